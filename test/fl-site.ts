import { expect } from "bun:test";
import { b64, http, identity, type Proc, type Serve, spawnPropeller, startServe, untilAlive } from "./helpers.ts";

// The federated-learning e2e's site (test/e2e/fl-rounds.test.ts, fl.test.ts): a real serve (authentication on) and
// real proplets that know the FL coordinator, and a client that sends updates as each proplet.
// A test file holds its own `s` (a test restarts serve and assigns it anew): the client reads it through a getter.

/** serve, and a proplet per id (its key into `keys`, its process into `procs`); each file starts its own. */
export async function startFlSite(
  procs: Proc[],
  keys: Record<string, string>,
  ids = ["alpha", "beta", "gamma"],
): Promise<Serve> {
  // A proplet killed mid-round is gone, not cut off: its run is given up at once.
  const s = await startServe({
    extra: ["--no-local-proplet", "--liveliness-threshold", "3", "--partition-grace", "0"],
  });
  for (const id of ids) {
    const c = await identity(s.url, "proplet", id);
    keys[id] = c.password;
    procs.push(
      spawnPropeller(["proplet"], {
        PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
        PROPLET_FL_URL: `${s.url}/fl`,
        PROPLET_ENTITY_ID: id,
        PROPLET_API_KEY: c.password,
        PROPLET_LIVELINESS_INTERVAL: "1",
      }),
    );
  }
  for (const id of ids) await untilAlive(s.url, id, 15_000);
  return s;
}

export async function stopFlSite(s: Serve | undefined, procs: Proc[]): Promise<void> {
  for (const p of procs) await p.kill();
  await s?.kill();
}

export const update = (round: string, proplet: string, w: number, n: number) => ({
  round_id: round,
  proplet_id: proplet,
  num_samples: n,
  metrics: { loss: w },
  update: { w: [w, w, w], b: w },
});

/** Requests as a proplet (its key), and experiments configured, against the serve `serve()` gives now. */
export function flClient(serve: () => Serve, keys: Record<string, string>) {
  const as = (who: string) => ({ authorization: `Bearer ${keys[who]}` });
  const post = async (path: string, who: string, body: unknown) => {
    const res = await fetch(`${serve().url}${path}`, {
      method: "POST",
      headers: { ...as(who), "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  /** An experiment whose tasks spin until the round closes: updates come from the test, as each proplet. */
  const configure = async (id: string, participants: string[], extra: Record<string, unknown> = {}) => {
    const r = await http(`${serve().url}/fl/experiments`, "POST", {
      experiment_id: id,
      participants,
      task_file: b64("spin"),
      timeout_s: 30,
      ...extra,
    });
    expect(r.status).toBe(200);
    return r.body as { round_id: string; model_version: number };
  };
  return { as, post, configure };
}
