import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  http,
  type Proc,
  propletEnv,
  type Serve,
  spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
  untilEnded,
} from "../helpers.ts";
import { Link } from "../link.ts";

// Edge partitions with a real cut link: a TCP proxy between proplet and broker black-holes the traffic (test/
// link.ts), so the proplet's keep-alive expires, the broker fires its Last Will and the proplet reconnects, as on a
// dropped edge link. Heartbeats every second: the liveness threshold is 3 s; keep-alive 2 s.

const TICKER_3S = { name: "ticker", file: b64("ticker"), inputs: [10, 300] };
const PROPLET = { PROPLET_LIVELINESS_INTERVAL: "1", PROPLET_MQTT_KEEPALIVE: "2" };

const get = async (s: Serve, id: string) => (await http(`${s.url}/tasks/${id}`)).body;
const runsOf = async (s: Serve, id: string) => (await http(`${s.url}/tasks/${id}/runs`)).body.runs;

async function startOn(s: Serve, task: Record<string, unknown>, proplet: string): Promise<string> {
  const c = await http(`${s.url}/tasks`, "POST", task);
  await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
  const t = await until("running", async () => {
    const v = await get(s, c.body.id);
    return v.state === 2 ? v : undefined;
  });
  expect(t.proplet_id).toBe(proplet);
  // Running on the proplet itself (its first output is in), not only dispatched: a cut now must not eat the start.
  await until("the first output", async () => {
    const logs = (await http(`${s.url}/tasks/${c.body.id}/logs`)).body;
    return JSON.stringify(logs).includes("tick 1");
  });
  return c.body.id;
}

describe("partitions", () => {
  let s: Serve;
  const links: Link[] = [];
  const procs: Proc[] = [];
  beforeAll(async () => {
    s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
  });
  afterAll(async () => {
    for (const p of procs) await p.kill("SIGKILL");
    for (const l of links) await l.close();
    await s?.kill();
  });
  const link = async (srv: Serve) => {
    const l = await new Link({ host: "127.0.0.1", port: srv.mqttPort }).start();
    links.push(l);
    return l;
  };

  test("a task running through a black-hole twice the liveness threshold completes with its result", async () => {
    const l = await link(s);
    const p = await spawnProplet({ url: s.url, mqttPort: l.port }, "edge-1", PROPLET);
    procs.push(p);
    await untilAlive(s.url, "edge-1");
    const id = await startOn(s, TICKER_3S, "edge-1");
    l.cut();
    // Unreachable, not lost: the run stays Running and says since when its proplet is silent.
    const cutOff = await until(
      "the proplet to be unreachable",
      async () => {
        const v = await get(s, id);
        return v.proplet_unreachable_since ? v : undefined;
      },
      8000,
    );
    expect(cutOff.state).toBe(2);
    expect((await http(`${s.url}/proplets/edge-1`)).body).toMatchObject({ alive: false });
    await Bun.sleep(7000 - (Date.now() - Date.parse(cutOff.proplet_unreachable_since)));
    expect((await get(s, id)).state).toBe(2); // 2× the threshold, and still kept
    l.restore();
    const done = await untilEnded(s.url, id, "the result after the link is back");
    expect(done).toMatchObject({ state: 3, proplet_id: "edge-1" });
    expect(done.results).toContain("tick 10\n");
    expect(await runsOf(s, id)).toHaveLength(1);
    await untilAlive(s.url, "edge-1");
  }, 40_000);

  test("a proplet restarted during the outage still delivers the result it queued", async () => {
    const l = await link(s);
    const state = tempDir("propeller-proplet-");
    const env = {
      ...PROPLET,
      PROPLET_DATA_DIR: state,
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${l.port}`,
      ...(await propletEnv(s.url, "edge-2")),
    };
    const p = spawnPropeller(["proplet"], env);
    await untilAlive(s.url, "edge-2");
    const id = await startOn(s, TICKER_3S, "edge-2");
    l.cut();
    // The task ends during the outage: its result waits on disk. Only a committed result counts: task metrics queue
    // there too, and a result file is written as .tmp first (a kill before its rename rightly loses it).
    const outbox = join(state, "outbox");
    await until(
      "the result queued on disk",
      () => existsSync(outbox) && readdirSync(outbox).some((f) => f.endsWith(".result.json")),
      10_000,
    );
    await p.kill("SIGKILL");
    const again = spawnPropeller(["proplet"], env); // the same proplet: its id, key and state dir
    procs.push(again);
    await Bun.sleep(500);
    l.restore();
    const done = await untilEnded(s.url, id, "the queued result");
    expect(done).toMatchObject({ state: 3, proplet_id: "edge-2" });
    expect(done.results).toContain("tick 10\n");
    expect(await runsOf(s, id)).toHaveLength(1);
    await until("the outbox emptied", () => readdirSync(outbox).length === 0);
  }, 40_000);

  test("past the grace the task runs elsewhere; the late result is kept on the first run only", async () => {
    const s2 = await startServe({
      extra: ["--no-local-proplet", "--liveliness-interval", "1", "--partition-grace", "2"],
    });
    try {
      const l = await link(s2);
      const a = await spawnProplet({ url: s2.url, mqttPort: l.port }, "cut-off", PROPLET);
      procs.push(a);
      await untilAlive(s2.url, "cut-off");
      const id = await startOn(s2, { ...TICKER_3S, max_retries: 1, retry_backoff_s: 0.1 }, "cut-off");
      const b = await spawnProplet(s2, "still-there", PROPLET);
      procs.push(b);
      await untilAlive(s2.url, "still-there");
      l.cut();
      const done = await untilEnded(s2.url, id, "the retry to complete elsewhere", 20_000);
      expect(done).toMatchObject({ state: 3, proplet_id: "still-there", attempt: 2 });
      l.restore();
      const late = await until(
        "the first run's late result",
        async () => {
          const r = await runsOf(s2, id);
          return r.find((x: { late_at?: string }) => x.late_at);
        },
        15_000,
      );
      expect(late).toMatchObject({ proplet_id: "cut-off", attempt: 1, state: 3, settled: true });
      expect(late.settled_error).toContain("proplet lost: cut-off");
      expect(late.results).toContain("tick 10\n");
      // The task is what its second run made; every run once.
      expect(await get(s2, id)).toMatchObject({ state: 3, proplet_id: "still-there", attempt: 2 });
      await untilAlive(s2.url, "cut-off");
      expect(await runsOf(s2, id)).toHaveLength(2);
    } finally {
      await s2.kill();
    }
  }, 60_000);
});
