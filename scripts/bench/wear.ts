// Flash wear benchmark: the bytes a `propeller serve` (and a standalone `propeller proplet`) makes the kernel write
// to the block device, per task and per hour of idling. Gateways run from SD cards and eMMC that wear out.
//
//   bun scripts/bench/wear.ts [--idle-s 600] [--rates 1,10,100] [--rate-s 20] [--sims 100] [--strace] [--no-proplet]
//
// What is counted: `write_bytes` of /proc/PID/io, the bytes the process caused to be written to the block layer
// (a page dirtied in the page cache counts once, when it goes from clean to dirty), beside `wchar` (bytes passed to
// write calls, cached or not) and `syscw` (write calls). On tmpfs write_bytes stays 0: the data dir is made under
// the temp dir, which must be a real disk (checked; set TMPDIR otherwise).
// Phases, each measured on its own:
//  1. idle, serve with its local proplet: --idle-s seconds after a 10 s settling, extrapolated to an hour (serve
//     writes heartbeats and metrics samples every 10 minutes: a shorter window may hold no such batch, or one);
//  2. per task at each of --rates tasks/s on the local proplet: tasks created and started through REST at that
//     pace for --rate-s seconds (the inline `add` module), counted from the first create until every task is
//     Completed and 3 s more (serve's idle checkpoint); the idle writes of that time are included, not subtracted;
//  3. idle with --sims simulated proplets besides the local one (MQTT clients that announce themselves, heartbeat
//     and send a metrics sample at a real proplet's default intervals, 10 s each);
//  4. unless --no-proplet: a second serve without a local proplet and one standalone proplet (its state dir on the
//     same disk), per task at each rate: serve's and the proplet's bytes.
// --strace attaches `strace -c -f` to serve during each phase and adds its counts of fsync, fdatasync and write
// calls (strace slows the process: the byte counts of such a run are still right, the pace may lag).
// Prints progress to stderr and, as its last stdout line, one JSON object.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { MODULES } from "../../src/examples/modules.ts";
import { scriptArgs } from "../args.ts";
import { adminToken, authHeaders, freePort, mqttLogin, serveArgs, startBenchProplet, waitForHealth } from "./lib.ts";

const { values: opt } = scriptArgs(
  import.meta.path,
  {
    options: {
      "idle-s": { type: "string", default: "600" },
      rates: { type: "string", default: "1,10,100" },
      "rate-s": { type: "string", default: "20" },
      sims: { type: "string", default: "100" },
      strace: { type: "boolean", default: false },
      "no-proplet": { type: "boolean", default: false },
    },
  },
  { "idle-s": { above: 0 }, rates: { above: 0, list: true }, "rate-s": { above: 0 }, sims: { min: 0 } },
);
const IDLE_S = Number(opt["idle-s"]);
const RATES = opt.rates!.split(",").map(Number);
const RATE_S = Number(opt["rate-s"]);
const SIMS = Number(opt.sims);
const root = join(import.meta.dir, "..", "..");
const MAIN = join(root, "src/main.ts");
const say = (s: string) => process.stderr.write(`${s}\n`);
const TMPFS = 0x01021994;

interface Io {
  write_bytes: number;
  wchar: number;
  syscw: number;
}
function io(pid: number): Io {
  const text = readFileSync(`/proc/${pid}/io`, "utf8");
  const field = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, "m").exec(text)![1]);
  return { write_bytes: field("write_bytes"), wchar: field("wchar"), syscw: field("syscw") };
}
const minus = (a: Io, b: Io): Io => ({
  write_bytes: a.write_bytes - b.write_bytes,
  wchar: a.wchar - b.wchar,
  syscw: a.syscw - b.syscw,
});

/** `strace -c` on a process until stopped: the calls counted by name (none without strace or with --strace off). */
function traceCalls(pid: number): () => Promise<Record<string, number>> {
  if (!opt.strace) return async () => ({});
  const p = spawn("strace", ["-c", "-f", "-p", String(pid), "-e", "trace=fsync,fdatasync,write,pwrite64,pwritev"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  return async () => {
    p.kill("SIGINT");
    await new Promise((r) => p.on("close", r));
    const out: Record<string, number> = {};
    for (const m of err.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/gm)) out[m[2]!] = Number(m[1]);
    return out;
  };
}

/** A serve of its own, in a fresh data dir on disk. */
async function startServe(extra: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), "propeller-wear-"));
  if (Number(statfsSync(dir).type) === TMPFS) throw new Error(`${dir} is on tmpfs: write_bytes would be 0 (TMPDIR=…)`);
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const proc = Bun.spawn([process.execPath, MAIN, ...serveArgs(httpPort, mqttPort, dir, extra)], {
    stdout: "inherit",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${httpPort}`;
  await waitForHealth(url);
  const token = adminToken(dir);
  const request = async (path: string, method = "GET", body?: unknown): Promise<any> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: body ? { ...authHeaders(token), "content-type": "application/json" } : authHeaders(token),
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
    return data;
  };
  return {
    dir,
    url,
    mqttPort,
    token,
    pid: proc.pid,
    request,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
type Serve = Awaited<ReturnType<typeof startServe>>;

/** Idle for `seconds`: the bytes written, per hour. */
async function idle(pids: number[], seconds: number) {
  const before = pids.map(io);
  const calls = traceCalls(pids[0]!);
  await Bun.sleep(seconds * 1000);
  const d = pids.map((p, i) => minus(io(p), before[i]!));
  const perHour = (n: number) => Math.round((n * 3600) / seconds);
  return {
    measured_s: seconds,
    write_bytes_per_hour: perHour(d[0]!.write_bytes),
    wchar_per_hour: perHour(d[0]!.wchar),
    write_calls_per_hour: perHour(d[0]!.syscw),
    ...(opt.strace ? { strace_calls: await calls() } : {}),
  };
}

/** Tasks at `rate` a second for RATE_S seconds; the bytes each of `pids` wrote per task. */
async function perTask(s: Serve, pids: number[], rate: number) {
  const n = Math.max(5, Math.round(rate * RATE_S));
  const file = MODULES.add.wasm;
  const before = pids.map(io);
  const calls = traceCalls(pids[0]!);
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait);
    pending.push(
      s.request("/tasks", "POST", { name: "add", file, inputs: [i, 1] }).then(async ({ id }) => {
        await s.request(`/tasks/${id}/start`, "POST");
      }),
    );
  }
  await Promise.all(pending);
  const sent = (performance.now() - t0) / 1000;
  for (const deadline = Date.now() + 120_000; ; await Bun.sleep(100)) {
    const done = (await s.request("/tasks?state=Completed&limit=1")).total as number;
    const failed = (await s.request("/tasks?state=Failed&limit=1")).total as number;
    if (failed) throw new Error(`${failed} task(s) failed`);
    if (done >= completedBefore.get(s)! + n) break;
    if (Date.now() > deadline) throw new Error(`only ${done} of ${n} tasks completed`);
  }
  completedBefore.set(s, completedBefore.get(s)! + n);
  await Bun.sleep(3000);
  const d = pids.map((p, i) => minus(io(p), before[i]!));
  const seconds = (performance.now() - t0) / 1000;
  return {
    rate_per_s: rate,
    tasks: n,
    achieved_rate_per_s: +(n / sent).toFixed(1),
    measured_s: +seconds.toFixed(1),
    write_bytes_per_task: Math.round(d[0]!.write_bytes / n),
    wchar_per_task: Math.round(d[0]!.wchar / n),
    write_calls_per_task: +(d[0]!.syscw / n).toFixed(1),
    ...(pids.length > 1
      ? {
          proplet_write_bytes_per_task: Math.round(d[1]!.write_bytes / n),
          proplet_wchar_per_task: Math.round(d[1]!.wchar / n),
        }
      : {}),
    ...(opt.strace ? { strace_calls: await calls() } : {}),
  };
}
const completedBefore = new Map<Serve, number>();

/** Simulated proplets: each announces itself, then heartbeats and sends a metrics sample every 10 s, spread out. */
async function simulate(s: Serve, n: number) {
  const base = "m/default/c/default/control/proplet";
  const clients: mqtt.MqttClient[] = [];
  const timers: Timer[] = [];
  for (let i = 0; i < n; i++) {
    const id = `sim-${String(i).padStart(4, "0")}`;
    const login = await mqttLogin(s.url, s.token, "proplet", id);
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: id, ...login });
    clients.push(c);
    const metadata = {
      os: "linux",
      cpu_arch: "x86_64",
      proplet_version: "sim",
      max_tasks: 1,
      liveliness_interval_s: 10,
    };
    c.publish(`${base}/create`, JSON.stringify({ proplet_id: id, namespace: "default", metadata }), { qos: 1 });
    const beat = () => {
      c.publish(`${base}/alive`, JSON.stringify({ proplet_id: id, status: "alive", namespace: "default", tasks: [] }));
      const sample = { proplet_id: id, namespace: "default", timestamp: new Date().toISOString(), cpu_percent: 1.5 };
      c.publish(`${base}/metrics`, JSON.stringify(sample));
    };
    timers.push(
      setTimeout(
        () => {
          beat();
          timers.push(setInterval(beat, 10_000));
        },
        (i * 10_000) / n,
      ),
    );
  }
  return async () => {
    for (const t of timers) clearInterval(t);
    await Promise.all(clients.map((c) => c.endAsync()));
  };
}

const out: Record<string, unknown> = { machine_note: "2-core machine shared with other engineers' work (loaded)" };

say("serve with its local proplet; settling 10 s…");
const a = await startServe();
completedBefore.set(a, 0);
await Bun.sleep(10_000);
// `--idle-s 60` printed `write_bytes_per_hour: 0` as if serve never wrote at idle: its batch comes every 10 min.
if (IDLE_S < 600) {
  say(`note: --idle-s ${IDLE_S} is under serve's 10-minute batch: the idle figures may hold no batch (0) or one`);
  out.idle_note = `idle windows of ${IDLE_S} s, under the 10-minute batch: per-hour figures are not a rate`;
}
say(`idle with the local proplet, ${IDLE_S} s…`);
out.idle_local = await idle([a.pid], IDLE_S);
say(JSON.stringify(out.idle_local));
const local = [];
for (const r of RATES) {
  say(`${r} tasks/s on the local proplet for ${RATE_S} s…`);
  local.push(await perTask(a, [a.pid], r));
  say(JSON.stringify(local.at(-1)));
}
out.per_task_local = local;
if (SIMS > 0) {
  say(`${SIMS} simulated proplets; settling 15 s, then idle ${IDLE_S} s…`);
  const stopSims = await simulate(a, SIMS);
  await Bun.sleep(15_000);
  out.idle_sims = { proplets: SIMS + 1, ...(await idle([a.pid], IDLE_S)) };
  say(JSON.stringify(out.idle_sims));
  await stopSims();
}
await a.stop();

if (!opt["no-proplet"]) {
  say("serve without a local proplet, and a standalone proplet…");
  const b = await startServe(["--no-local-proplet"]);
  completedBefore.set(b, 0);
  const state = mkdtempSync(join(tmpdir(), "propeller-wear-proplet-"));
  const proplet = await startBenchProplet({
    cmd: [process.execPath, MAIN],
    url: b.url,
    token: b.token,
    mqttPort: b.mqttPort,
    dir: state,
    id: "wear-proplet",
  });
  await Bun.sleep(5000);
  const standalone = [];
  for (const r of RATES) {
    say(`${r} tasks/s on a standalone proplet for ${RATE_S} s…`);
    standalone.push(await perTask(b, [b.pid, proplet.pid], r));
    say(JSON.stringify(standalone.at(-1)));
  }
  out.per_task_standalone = standalone;
  proplet.kill("SIGTERM");
  await proplet.exited;
  rmSync(state, { recursive: true, force: true });
  await b.stop();
}
console.log(JSON.stringify(out));
