import { readFileSync } from "node:fs";
import {
  b64,
  type Proc,
  propletEnv,
  runTask,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  untilAlive,
} from "./helpers.ts";

// The task-sandbox attacks' site (test/attack/sandbox.test.ts, sandbox-files.test.ts): a real serve and two real
// proplets, one running each task as a child process (PROPLET_RUNTIME=host), one in worker threads, both given
// PROPLET_DIRS and a disk bound per run.

// Each test file starts its own site (startSandboxSite in beforeAll): the bindings below are live, set anew by each.
export let s: Serve;
export let procs: Record<string, Proc> = {};
export let keys: Record<string, string> = {};
export let allowed: string; // PROPLET_DIRS of both proplets
export let outside: string; // a directory no task may touch
export const DISK_MB = 16;

export async function startSandboxSite(): Promise<void> {
  procs = {};
  keys = {};
  allowed = tempDir("propeller-sb-allowed-");
  outside = tempDir("propeller-sb-outside-");
  s = await startServe({ extra: ["--no-local-proplet"] });
  for (const [id, runtime] of [
    ["sb-host", "host"],
    ["sb-threads", "inprocess"],
  ] as const) {
    const creds = await propletEnv(s.url, id);
    keys[id] = creds.PROPLET_API_KEY!;
    procs[id] = spawnPropeller(["proplet"], {
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
      ...creds,
      PROPLET_RUNTIME: runtime,
      PROPLET_DIRS: allowed,
      PROPLET_MAX_TASK_DISK_MB: String(DISK_MB),
    });
  }
  for (const id of Object.keys(procs)) await untilAlive(s.url, id, 20_000);
}

export async function stopSandboxSite(): Promise<void> {
  for (const p of Object.values(procs)) await p.kill("SIGKILL");
  await s?.kill("SIGKILL");
}

export const sandbox = (proplet: string, inputs: string[], extra: Record<string, unknown> = {}) =>
  runTask(s.url, { name: "sandbox", file: b64("sandbox"), inputs, proplet_id: proplet, ...extra }, 20_000);

export const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
