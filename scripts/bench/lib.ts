import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { cpuTicks, statFields } from "../../src/core/procstat.ts";

// Helpers shared by the benchmarks.

/** The tests' own: a free loopback port, never one handed out before in this process. */
export { freePort } from "../../test/helpers.ts";

/** `serve`'s arguments on the given ports with its data in `dataDir` (log level BENCH_LOG_LEVEL, else warn). */
export function serveArgs(httpPort: number, mqttPort: number, dataDir: string, extra: string[] = []): string[] {
  const level = process.env.BENCH_LOG_LEVEL ?? "warn";
  return [
    "serve",
    "--http-port",
    `${httpPort}`,
    "--mqtt-port",
    `${mqttPort}`,
    "--data-dir",
    dataDir,
    "--log-level",
    level,
    ...extra,
  ];
}

/** Waits until `url/health` answers, or throws after ~15 s. */
export async function waitForHealth(url: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {}
    if (i > 300) throw new Error(`${url} did not start`);
    await Bun.sleep(50);
  }
}

/** The admin token a serve wrote into its data dir ("" with --no-auth). */
export function adminToken(dataDir: string): string {
  const file = join(dataDir, "admin.token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "";
}

/** REST headers with the token, when there is one. */
export function authHeaders(token: string): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** MQTT credentials for a new identity of `kind` (none without a token: the broker takes anyone). */
export async function mqttLogin(url: string, token: string, kind: string, id: string) {
  if (!token) return {};
  const res = await fetch(`${url}/entities`, {
    method: "POST",
    headers: { ...authHeaders(token), "content-type": "application/json" },
    body: JSON.stringify({ kind, id }),
  });
  const e = (await res.json()) as { id: string; api_key: string; error?: string };
  if (!res.ok) throw new Error(`creating ${kind} ${id}: ${res.status} ${e.error}`);
  return { username: e.id, password: e.api_key };
}

/**
 * A standalone proplet (`cmd proplet`, state in `dir`) with an identity of its own on serve's broker, as on a
 * worker device; resolves once serve counts it active. Logs at BENCH_LOG_LEVEL (warn), as the benchmarks' serve.
 */
export async function startBenchProplet(o: {
  cmd: string[];
  url: string;
  token: string;
  mqttPort: number;
  dir: string;
  id: string;
}): Promise<Subprocess> {
  const login = await mqttLogin(o.url, o.token, "proplet", o.id);
  const p = Bun.spawn([...o.cmd, "proplet"], {
    env: {
      ...process.env,
      PROPLET_DATA_DIR: o.dir,
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${o.mqttPort}`,
      PROPLET_ENTITY_ID: login.username ?? o.id,
      PROPLET_API_KEY: login.password ?? "",
      PROPLET_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
    },
    stdout: "inherit",
    stderr: "inherit",
  });
  process.once("exit", () => p.kill("SIGKILL")); // not left behind when the bench fails
  for (let i = 0; ; i++) {
    const r = await fetch(`${o.url}/proplets?status=active&limit=1`, { headers: authHeaders(o.token) });
    if (((await r.json()) as { total: number }).total > 0) return p;
    if (i > 400) throw new Error(`the standalone proplet ${o.id} did not join`);
    await Bun.sleep(50);
  }
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  return cpuTicks(statFields(readFileSync(`/proc/${pid}/stat`, "utf8"))) / 100;
}

/** CPU seconds of a process's main thread alone (its thread id is the process id). */
export function mainThreadCpuSeconds(pid: number): number {
  return cpuTicks(statFields(readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8"))) / 100;
}

/**
 * CPU seconds of a process's threads by role, from /proc (threads that ended meanwhile are not counted): `main`
 * (the process's own thread), `jit` (JavaScriptCore's compiler threads), `workers` (Worker threads: the Wasm
 * pool and the compile thread), `other` (GC helpers, the allocator's scavenger, Bun's pool).
 */
export function threadCpuSeconds(pid: number): Record<"main" | "jit" | "workers" | "other", number> {
  const out = { main: 0, jit: 0, workers: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const role = Number(tid) === pid ? "main" : comm === "JITWorker" ? "jit" : comm === "Worker" ? "workers" : "other";
    out[role] += cpuTicks(statFields(stat)) / 100;
  }
  return out;
}

/** Resident memory of a process in MiB, from /proc (NaN when the process is gone). */
export function rssMib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** MiB on disk under a directory (the database, its WAL and anything beside them). */
export function duMib(dir: string): number {
  let total = 0;
  for (const f of readdirSync(dir, { recursive: true }) as string[]) {
    const st = statSync(join(dir, f));
    if (st.isFile()) total += st.blocks * 512;
  }
  return total / 2 ** 20;
}
