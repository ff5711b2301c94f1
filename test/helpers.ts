import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

// Test set-up: real `propeller` processes on free loopback ports, real SQLite files in temp dirs.

export const ROOT = join(import.meta.dir, "..");
export const MAIN = join(ROOT, "src", "main.ts");
export const FIXTURES = join(ROOT, "test", "fixtures", "build");

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, `${name}.wasm`)));
}

export const b64 = (name: string) => Buffer.from(fixture(name)).toString("base64");

export function tempDir(prefix = "propeller-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  output(): string;
  kill(signal?: NodeJS.Signals | number): Promise<void>;
}

/** Spawns `propeller ARGS…` (from source, or `cmd` for the compiled binary), collecting its output. */
export function spawnPropeller(
  args: string[],
  env: Record<string, string> = {},
  cmd = [process.execPath, MAIN],
  cwd = ROOT,
): Proc {
  const proc = Bun.spawn([...cmd, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) out += new TextDecoder().decode(chunk);
  };
  void drain(proc.stdout);
  void drain(proc.stderr);
  return {
    proc,
    output: () => out,
    kill: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await proc.exited;
    },
  };
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    await Bun.sleep(everyMs);
  }
}

export interface Serve extends Proc {
  url: string;
  httpPort: number;
  mqttPort: number;
  dataDir: string;
}

export async function startServe(
  opts: { dataDir?: string; extra?: string[]; env?: Record<string, string>; cmd?: string[]; cwd?: string } = {},
): Promise<Serve> {
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const dataDir = opts.dataDir ?? tempDir();
  const p = spawnPropeller(
    [
      "serve",
      "--http-port",
      String(httpPort),
      "--mqtt-port",
      String(mqttPort),
      "--data-dir",
      dataDir,
      ...(opts.extra ?? []),
    ],
    opts.env,
    opts.cmd,
    opts.cwd,
  );
  const url = `http://127.0.0.1:${httpPort}`;
  try {
    await until("serve to answer /health", async () => (await fetch(`${url}/health`)).ok, 15_000);
  } catch (e) {
    await p.kill("SIGKILL");
    throw new Error(`${e}\n--- serve output ---\n${p.output()}`);
  }
  return { ...p, url, httpPort, mqttPort, dataDir };
}

export async function http<T = any>(url: string, method = "GET", body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    method,
    ...(body !== undefined
      ? {
          body: typeof body === "string" ? body : JSON.stringify(body),
          headers: { "content-type": "application/json" },
        }
      : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** Creates a task, starts it, and waits until it leaves Running. */
export async function runTask(url: string, task: Record<string, unknown>, timeoutMs = 10_000): Promise<any> {
  const created = await http(`${url}/tasks`, "POST", task);
  if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.body)}`);
  const started = await http(`${url}/tasks/${created.body.id}/start`, "POST");
  if (started.status !== 200) throw new Error(`start failed: ${JSON.stringify(started.body)}`);
  return until(
    `task ${created.body.id} to finish`,
    async () => {
      const t = (await http(`${url}/tasks/${created.body.id}`)).body;
      return t.state >= 3 ? t : undefined;
    },
    timeoutMs,
  );
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Waits until the manager at `url` shows proplet `id` alive. */
export async function untilAlive(url: string, id: string, timeoutMs = 10_000): Promise<void> {
  await until(
    `proplet ${id} to be alive`,
    async () => (await http(`${url}/proplets/${id}`)).body?.alive === true,
    timeoutMs,
  );
}
