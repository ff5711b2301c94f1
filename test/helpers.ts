import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import mqtt from "mqtt";
import { cpuTicks, statFields } from "../src/core/procstat.ts";

// Test set-up: real `propeller` processes on free loopback ports, real SQLite files in temp dirs.

export const ROOT = join(import.meta.dir, "..");
export const MAIN = join(ROOT, "src", "main.ts");
export const FIXTURES = join(ROOT, "test", "fixtures", "build");

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, `${name}.wasm`)));
}

export const b64 = (name: string) => Buffer.from(fixture(name)).toString("base64");

/** A module's bytes from its text format (wabt). */
export async function assemble(wat: string): Promise<Uint8Array> {
  const wabt = await (await import("wabt")).default();
  const mod = wabt.parseWat("test.wat", wat);
  const raw = new Uint8Array(mod.toBinary({}).buffer);
  mod.destroy();
  return raw;
}

/** Temp dirs made by this test process, removed when it exits (a full suite made thousands, some of 37 MB). */
const made: string[] = [];
process.on("exit", () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = "propeller-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Ports this process has handed out: the kernel may give a just-closed port again, as two of one serve's. */
const handedOut = new Set<number>();

/** A loopback port free now, never one this process handed out before (a serve's HTTP and MQTT ports once collided). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const a = s.address();
        const p = typeof a === "object" && a ? a.port : 0;
        s.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("no loopback port that was not handed out already, after 100 tries");
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
  // A proplet holds a state dir; each gets a fresh one unless the test gives it (to restart on the same one).
  const state =
    args[0] === "proplet" && !env.PROPLET_DATA_DIR ? { PROPLET_DATA_DIR: tempDir("propeller-proplet-") } : {};
  const proc = Bun.spawn([...cmd, ...args], {
    cwd,
    env: { ...process.env, ...state, ...env },
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
  /** The admin token serve wrote into its data dir (none with --no-auth). */
  token?: string;
}

/** Admin tokens by manager origin: `http()` sends the one for the URL it calls, as the CLI finds serve's own. */
const tokens = new Map<string, string>();

/**
 * Runs the CLI to completion with these variables on top of the environment (a variable set to "" is removed, as
 * a user without it would run it).
 */
export function cli(args: string[], env: Record<string, string> = {}) {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === "") delete merged[k];
  const p = Bun.spawnSync([process.execPath, MAIN, ...args], { env: merged });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** The Authorization header for the serve behind this URL. */
export function authHeader(url: string): Record<string, string> {
  return { authorization: `Bearer ${tokenOf(url)}` };
}

/** The admin token of the serve behind this URL, for a CLI process's PROPELLER_TOKEN. */
export function tokenOf(url: string): string {
  return tokens.get(new URL(url).origin) ?? "";
}

/** CA certificates by manager origin, for an https serve: `http()` trusts the one for the URL it calls. */
const cas = new Map<string, string>();

export async function startServe(
  opts: {
    dataDir?: string;
    extra?: string[];
    env?: Record<string, string>;
    cmd?: string[];
    cwd?: string;
    /** The CA of serve's --tls-cert: the URL becomes https://localhost. */
    tlsCa?: string;
    /** How long serve may take to answer /health (an emulated binary is slow to start). */
    healthTimeoutMs?: number;
    /** The ports of an earlier serve, to come back where its clients are (a restart). */
    ports?: { http: number; mqtt: number };
  } = {},
): Promise<Serve> {
  const httpPort = opts.ports?.http ?? (await freePort());
  const mqttPort = opts.ports?.mqtt ?? (await freePort());
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
  const url = opts.tlsCa ? `https://localhost:${httpPort}` : `http://127.0.0.1:${httpPort}`;
  if (opts.tlsCa) cas.set(url, opts.tlsCa);
  const tls = opts.tlsCa ? { tls: { ca: opts.tlsCa } } : {};
  try {
    const seen = await until(
      "serve to answer /health",
      async () => {
        // A serve that exited (a bad flag, a crash) will never answer: say so now, not after the timeout.
        if (p.proc.exitCode !== null || p.proc.signalCode !== null) return "exited";
        return (await fetch(`${url}/health`, tls)).ok && "healthy";
      },
      opts.healthTimeoutMs ?? 15_000,
    );
    if (seen === "exited") throw new Error(`serve exited (${p.proc.exitCode ?? p.proc.signalCode})`);
  } catch (e) {
    await p.kill("SIGKILL");
    throw new Error(`${e}\n--- serve output ---\n${p.output()}`);
  }
  const tokenFile = join(dataDir, "admin.token");
  const token = existsSync(tokenFile) ? readFileSync(tokenFile, "utf8").trim() : undefined;
  if (token) tokens.set(url, token);
  return { ...p, url, httpPort, mqttPort, dataDir, token };
}

/** An MQTT identity made through the manager's REST API (`POST /entities`). */
export async function identity(url: string, kind: "proplet" | "proxy" | "manager", id: string) {
  const r = await http<{ id: string; api_key: string }>(`${url}/entities`, "POST", { kind, id });
  if (r.status !== 201) throw new Error(`creating ${kind} ${id} failed: ${r.status} ${JSON.stringify(r.body)}`);
  return { username: r.body.id, password: r.body.api_key };
}

/**
 * A raw MQTT peer on serve's broker with an identity of its own (`kind`, `id`), as a hostile or hand-written
 * proplet or manager is: the client id is the identity, and it does not reconnect.
 */
export async function peer(s: { url: string; mqttPort: number }, kind: "proplet" | "proxy" | "manager", id: string) {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: id,
    ...(await identity(s.url, kind, id)),
    reconnectPeriod: 0,
  });
}

/** The environment a proplet process needs to log in as `id`. */
export async function propletEnv(url: string, id: string): Promise<Record<string, string>> {
  const c = await identity(url, "proplet", id);
  return { PROPLET_ENTITY_ID: c.username, PROPLET_API_KEY: c.password };
}

/** A `propeller proplet` joined to `s` over plain MQTT with its own identity `id`; `env` adds settings. */
export async function spawnProplet(
  s: { url: string; mqttPort: number },
  id: string,
  env: Record<string, string> = {},
  cmd?: string[],
  cwd?: string,
): Promise<Proc> {
  // PROPLET_FL_URL: the gateway's FL routes, the one origin besides its own FL URLs that is sent its key.
  const join = {
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_FL_URL: `${s.url}/fl`,
    ...(await propletEnv(s.url, id)),
  };
  return spawnPropeller(["proplet"], { ...join, ...env }, cmd, cwd);
}

export async function http<T = any>(url: string, method = "GET", body?: unknown): Promise<{ status: number; body: T }> {
  const token = tokens.get(new URL(url).origin);
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const ca = cas.get(new URL(url).origin);
  const res = await fetch(url, {
    ...(ca ? { tls: { ca } } : {}),
    method,
    headers: body !== undefined ? { ...auth, "content-type": "application/json" } : auth,
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
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
  return untilEnded(url, created.body.id, `task ${created.body.id} to finish`, timeoutMs);
}

/** Creates and starts a task, and waits until it runs; the create response (its id in `body.id`). */
export async function startRunning(url: string, task: Record<string, unknown>, what = "the task to run") {
  const c = await http(`${url}/tasks`, "POST", task);
  if (c.status !== 201) throw new Error(`create failed: ${JSON.stringify(c.body)}`);
  const started = await http(`${url}/tasks/${c.body.id}/start`, "POST");
  if (started.status !== 200) throw new Error(`start failed: ${JSON.stringify(started.body)}`);
  await until(what, async () => (await http(`${url}/tasks/${c.body.id}`)).body.state === 2);
  return c;
}

/** The task once it has ended (Completed or later). */
export async function untilEnded(url: string, id: string, what: string, timeoutMs = 10_000): Promise<any> {
  return until(
    what,
    async () => {
      const t = (await http(`${url}/tasks/${id}`)).body;
      return t.state >= 3 ? t : undefined;
    },
    timeoutMs,
  );
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  return cpuTicks(statFields(readFileSync(`/proc/${pid}/stat`, "utf8"))) / 100;
}

/** Waits until the manager at `url` shows proplet `id` alive. */
export async function untilAlive(url: string, id: string, timeoutMs = 10_000): Promise<void> {
  await until(
    `proplet ${id} to be alive`,
    async () => (await http(`${url}/proplets/${id}`)).body?.alive === true,
    timeoutMs,
  );
}

/**
 * Starts the ticker fixture (N lines, one every MS ms) as a daemon and follows it with `propeller tasks logs
 * --follow`: returns the state the task was in when the first line reached the CLI, and the CLI's exit and output.
 */
export async function followTicker(url: string, n: number, ms: number, extra: Record<string, unknown> = {}) {
  const task = { name: "ticker", file: b64("ticker"), inputs: [n, ms], daemon: true, ...extra };
  const created = await http(`${url}/tasks`, "POST", task);
  await http(`${url}/tasks/${created.body.id}/start`, "POST");
  const follower = spawnPropeller(["tasks", "logs", created.body.id.slice(0, 8), "--follow"], {
    PROPELLER_URL: url,
    PROPELLER_TOKEN: tokenOf(url),
  });
  await until("the first line to reach the CLI", () => follower.output().includes("tick 1\n"), 10_000);
  const stateAtFirstLine = (await http(`${url}/tasks/${created.body.id}`)).body.state;
  const code = await follower.proc.exited;
  return { id: created.body.id as string, stateAtFirstLine, code, output: follower.output() };
}

/** `KEY=VALUE` lines (what `proplets add` prints) as an environment. */
export function envLines(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .trim()
      .split("\n")
      .map((l) => l.split("=", 2) as [string, string]),
  );
}
