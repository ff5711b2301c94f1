import { mkdirSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { adminToken, authHeaders, freePort, median, mqttLogin, serveArgs, waitForHealth } from "./lib.ts";

// The end-to-end half of scripts/bench/trust.ts: start → result with and without a trust policy, in one run.

const root = join(import.meta.dir, "..", "..");

interface Site {
  url: string;
  token: string;
  proc: ReturnType<typeof Bun.spawn>;
  client: mqtt.MqttClient;
  waiting: Map<string, () => void>;
}

async function startSite(dir: string, extra: string[]): Promise<Site> {
  mkdirSync(dir);
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const proc = Bun.spawn([process.execPath, join(root, "src/main.ts"), ...serveArgs(httpPort, mqttPort, dir, extra)], {
    stdout: "inherit",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${httpPort}`;
  await waitForHealth(url);
  const token = adminToken(dir);
  const login = await mqttLogin(url, token, "manager", "bench-observer");
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: "bench-observer", ...login });
  const waiting = new Map<string, () => void>();
  client.on("message", (_t, payload) => waiting.get(JSON.parse(payload.toString()).task_id as string)?.());
  await client.subscribeAsync("m/default/c/default/control/proplet/results", { qos: 0 });
  return { url, token, proc, client, waiting };
}

async function post(site: Site, path: string, body?: unknown): Promise<{ id: string }> {
  const res = await fetch(`${site.url}${path}`, {
    method: "POST",
    headers: body ? { ...authHeaders(site.token), "content-type": "application/json" } : authHeaders(site.token),
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(data)}`);
  return data as { id: string };
}

/** One task created (before the clock), then started; the clock stops when the API shows it Completed. */
async function sample(site: Site, task: Record<string, unknown>): Promise<number> {
  const { id } = await post(site, "/tasks", task);
  const seen = new Promise<void>((resolve) => site.waiting.set(id, resolve));
  const t0 = performance.now();
  await post(site, `/tasks/${id}/start`);
  await seen;
  site.waiting.delete(id);
  for (;;) {
    const t = (await (await fetch(`${site.url}/tasks/${id}`, { headers: authHeaders(site.token) })).json()) as {
      state: number;
      error?: string;
    };
    if (t.state === 3) return performance.now() - t0;
    if (t.state === 4) throw new Error(`task ${id} failed: ${t.error}`);
  }
}

/** Median start → result, in ms, for an image task and a signed inline one, with and without the policy. */
export async function endToEnd(o: {
  dir: string;
  image: string;
  file: string;
  signature: string;
  policyArgs: string[];
  samples: number;
}) {
  const off = await startSite(join(o.dir, "serve-off"), []);
  const on = await startSite(join(o.dir, "serve-on"), o.policyArgs);
  try {
    const kinds = {
      image: { name: "add", image_url: o.image, inputs: [1, 2] },
      inline: { name: "add", file: o.file, signature: o.signature, inputs: [1, 2] },
    };
    const times = {
      image: { on: [] as number[], off: [] as number[] },
      inline: { on: [] as number[], off: [] as number[] },
    };
    // Warm-up: modules fetched and cached, the policy's decisions cached by digest.
    for (let i = 0; i < 20; i++)
      for (const k of ["image", "inline"] as const) {
        await sample(off, kinds[k]);
        await sample(on, kinds[k]);
      }
    for (let i = 0; i < o.samples; i++)
      for (const k of ["image", "inline"] as const) {
        // Alternating which goes first: neither always follows the other's run.
        const [a, b] = i % 2 ? ([on, off] as const) : ([off, on] as const);
        times[k][a === on ? "on" : "off"].push(await sample(a, kinds[k]));
        times[k][b === on ? "on" : "off"].push(await sample(b, kinds[k]));
      }
    const ms = (x: number) => Math.round(x * 100) / 100;
    const out: Record<string, number> = { e2e_samples: o.samples };
    for (const k of ["image", "inline"] as const) {
      const m = { on: median(times[k].on), off: median(times[k].off) };
      out[`${k}_start_to_result_ms_p50_no_policy`] = ms(m.off);
      out[`${k}_start_to_result_ms_p50_policy`] = ms(m.on);
      out[`${k}_policy_adds_ms_p50`] = ms(m.on - m.off);
      out[`${k}_policy_ratio_p50`] = Math.round((m.on / m.off) * 1000) / 1000;
    }
    return out;
  } finally {
    for (const s of [off, on]) {
      await s.client.endAsync();
      s.proc.kill("SIGKILL");
    }
  }
}
