// Dispatch benchmark: a real `propeller serve` (embedded broker, SQLite, local proplet) in its own process.
//  1. warm-up;
//  2. latency: sequential start → result stored, for a tiny `add` task (the task is created before the clock
//     starts; the clock stops when GET /tasks/{id} shows it Completed, after its MQTT result was seen);
//  3. throughput: after --warm-up tasks at the same concurrency (not timed), --rounds bursts of N tasks created,
//     started and completed by C concurrent clients; a round's clock stops when the SQLite file itself holds its N
//     Completed tasks. The figures are the round with the median rate (all rounds' rates are listed).
// Prints progress to stderr and, as its last stdout line, one JSON object with the figures.
//
//   bun scripts/bench/dispatch.ts [--samples 1000] [--tasks 10000] [--concurrency 64] [--warm-up 10000] [--rounds 3]
//     [--bin dist/propeller] [--no-auth] [--storage sqlite|kv|postgres] [--idle-s 0] [--module-kib 0]
//     [--tracing RATIO] [--no-floor]
// The same load runs against this machine's floor (floor.ts: the same I/O with no logic), a round of it after each
// of serve's: `floor_tasks_per_s` and `ratio_to_floor` (the median over rounds of serve's tasks/s over the floor's
// in the round after it), the figure that travels between machines.
// Serve's CPU per task is also split by thread (`serve_cpu_ms_per_task_by_thread`: main, jit, workers, other).
// Also reported: the data dir's size after the rounds (`data_dir_mib`; every task carries the same module), and
// serve's RSS before the burst, at its peak, and after --idle-s seconds of idling (`rss_*_mib`).
// Authentication is on, as in a default serve (a bearer token on every request, credentials on MQTT); --no-auth
// runs the same without, for comparison.
import { Database } from "bun:sqlite";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { MODULES } from "../../src/examples/modules.ts";
import { scriptArgs } from "../args.ts";
import { type FloorRound, medianRound, startFloor } from "./floor.ts";
import {
  adminToken,
  authHeaders,
  cpuSeconds,
  duMib,
  freePort,
  mainThreadCpuSeconds,
  mqttLogin,
  rssMib,
  serveArgs,
  threadCpuSeconds,
  waitForHealth,
} from "./lib.ts";
import { loadClient } from "./load.ts";

const { values: opt } = scriptArgs(
  import.meta.path,
  {
    options: {
      samples: { type: "string", default: "1000" },
      tasks: { type: "string", default: "10000" },
      concurrency: { type: "string", default: "64" },
      "warm-up": {
        type: "string",
        default: "10000",
        description: "tasks run at the same concurrency before the throughput clock starts (serve's and the floor's)",
      },
      rounds: { type: "string", default: "3", description: "timed bursts of serve and of the floor, taking turns" },
      bin: { type: "string" },
      profile: { type: "string", description: "directory for a CPU profile (markdown) of the serve process" },
      "profile-json": {
        type: "boolean",
        default: false,
        description: "the profile as a .cpuprofile (JSON: every sample's stack, for a tool to sum) instead of markdown",
      },
      "no-auth": { type: "boolean", default: false },
      "no-floor": { type: "boolean", default: false, description: "skip the floor (floor.ts) run after serve's" },
      storage: { type: "string", default: "sqlite", description: "sqlite, kv or postgres (a throwaway cluster)" },
      "idle-s": { type: "string", default: "0", description: "seconds to idle after the burst before RSS is read" },
      "module-kib": { type: "string", default: "0", description: "pad the module with a custom section this large" },
      tracing: {
        type: "string",
        description: "trace with this sampling ratio (0..1) to an OTLP/HTTP receiver the bench starts",
      },
    },
  },
  {
    samples: { min: 0 },
    tasks: { min: 1 },
    concurrency: { min: 1 },
    "warm-up": { min: 0 },
    rounds: { min: 1 },
    "idle-s": { min: 0 },
    "module-kib": { min: 0 },
    tracing: { min: 0 },
  },
);
const SAMPLES = Number(opt.samples);
const TASKS = Number(opt.tasks);
const CONCURRENCY = Number(opt.concurrency);
const WARM_UP = Number(opt["warm-up"]);
const ROUNDS = Number(opt.rounds);
const root = join(import.meta.dir, "..", "..");
// The example module propeller carries (no build needed), optionally padded with a custom section (which every
// runtime ignores) to the size of a real module, to see what storing it costs.
const file = padded(MODULES.add.wasm, Number(opt["module-kib"]) * 1024);

function padded(b64: string, bytes: number): string {
  if (bytes <= 0) return b64;
  const name = new TextEncoder().encode("pad");
  const body = new Uint8Array(1 + name.length + bytes);
  body[0] = name.length;
  body.set(name, 1);
  const leb: number[] = [];
  for (let n = body.length; ; ) {
    const b = n & 0x7f;
    n >>>= 7;
    leb.push(n ? b | 0x80 : b);
    if (!n) break;
  }
  return Buffer.concat([Buffer.from(b64, "base64"), Buffer.from([0, ...leb]), body]).toString("base64");
}
const say = (s: string) => process.stderr.write(`${s}\n`);

const dataDir = mkdtempSync(join(tmpdir(), "propeller-bench-"));
const httpPort = await freePort();
const mqttPort = await freePort();
const prof = opt.profile ? [opt["profile-json"] ? "--cpu-prof" : "--cpu-prof-md", `--cpu-prof-dir=${opt.profile}`] : [];
const cmd = opt.bin ? [opt.bin] : [process.execPath, ...prof, join(root, "src/main.ts")];
// PostgreSQL: a throwaway cluster, as the tests start one; the store is counted there instead of in the file.
const pg = opt.storage === "postgres" ? await (await import("../../test/postgres.ts")).startPostgres() : undefined;
const pgUrl = pg ? await pg.database("dispatch") : undefined;
const storageArgs = pgUrl ? ["--storage", "postgres", "--postgres-url", pgUrl] : ["--storage", opt.storage!];
const serveExtra = [...(opt["no-auth"] ? ["--no-auth"] : []), ...storageArgs];
// With --tracing: a receiver that takes OTLP/HTTP JSON and counts the spans, as a collector would.
let spansReceived = 0;
const receiver = opt.tracing
  ? Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      async fetch(req) {
        // Counted without parsing: the receiver shares the machine's two cores with serve and must stay cheap.
        const text = await req.text();
        for (let i = text.indexOf('"spanId"'); i >= 0; i = text.indexOf('"spanId"', i + 8)) spansReceived++;
        return new Response("{}", { headers: { "content-type": "application/json" } });
      },
    })
  : undefined;
const tracingEnv = receiver
  ? { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`, OTEL_TRACES_SAMPLER_ARG: opt.tracing! }
  : {};
const serve = Bun.spawn([...cmd, ...serveArgs(httpPort, mqttPort, dataDir, serveExtra)], {
  stdout: "inherit",
  stderr: "inherit",
  env: { ...process.env, ...tracingEnv },
});
process.once("exit", () => serve.kill("SIGKILL")); // not left behind when the bench fails
const url = `http://127.0.0.1:${httpPort}`;
await waitForHealth(url);
const token = adminToken(dataDir);

// Results seen on MQTT, to know when to look in the API without hammering it.
const login = await mqttLogin(url, token, "manager", "bench-observer");
const client = await loadClient(url, mqttPort, token, login);
const post = client.post;

async function startAndWaitStored(id: string): Promise<void> {
  await client.startAndSeen(id);
  for (;;) {
    const res = await fetch(`${url}/tasks/${id}`, { headers: authHeaders(token) });
    const t = (await res.json()) as { state: number; error?: string };
    if (t.state === 3) return;
    if (t.state === 4) throw new Error(`task ${id} failed: ${t.error}`);
  }
}

const task = (i: number) => ({ name: "add", file, inputs: [i, 1] });

say("warm-up…");
for (let i = 0; i < 200; i++) await startAndWaitStored((await post("/tasks", task(i))).id);

say(`latency: ${SAMPLES} sequential samples…`);
const lat: number[] = [];
for (let i = 0; i < SAMPLES; i++) {
  const { id } = await post("/tasks", task(i));
  const t0 = performance.now();
  await startAndWaitStored(id);
  lat.push(performance.now() - t0);
}
lat.sort((a, b) => a - b);
const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!;

// The throughput clock measures a warm serve: JavaScriptCore compiles the code of a burst (its many concurrent
// requests, group commits) on its compiler threads while the first thousands of tasks run, a cost paid once after
// start. After 2,000 tasks its optimizing tier was still at work through the first timed round (BUN_JSC_
// reportCompileTimes: 203 FTL compiles, 1.7 s of a core, in 10,000 tasks; `jit` 0.088 ms a task over 3 rounds);
// after 10,000, 0.007–0.03. The floor gets the same warm-up.
say(`warm-up: ${WARM_UP} tasks, ${CONCURRENCY} concurrent clients…`);
if (WARM_UP > 0) await client.burst(WARM_UP, CONCURRENCY, task);
const db = opt.storage === "sqlite" ? new Database(join(dataDir, "propeller.db"), { readonly: true }) : undefined;
const pgSql = pgUrl ? new (await import("bun")).SQL(pgUrl) : undefined;
// LMDB takes readers in other processes: the bench reads serve's counters directly.
const kv =
  opt.storage === "kv" ? (await import("../../src/storage/kv/index.ts")).openKv(join(dataDir, "kv")) : undefined;
// .all() runs each statement to completion, so no read snapshot stays open between polls.
const count = async (state: number): Promise<number> => {
  if (pgSql) return Number((await pgSql`SELECT count(*) AS n FROM tasks WHERE state = ${state}`)[0].n);
  if (kv) return kv.tasks.countByState()[state] ?? 0;
  // serve's state index leaves Completed (3) out (src/storage/sqlite/find.ts): those are all less the others.
  if (state !== 3)
    return db!
      .query<{ n: number }, [number]>("SELECT count(*) AS n FROM tasks WHERE state = ? AND state != 3")
      .all(state)[0]!.n;
  return db!
    .query<{ n: number }, []>(
      "SELECT (SELECT count(*) FROM tasks) - (SELECT count(*) FROM tasks WHERE state != 3) AS n",
    )
    .all()[0]!.n;
};
const rssBefore = rssMib(serve.pid);
let rssPeak = rssBefore;
const rssWatch = setInterval(() => (rssPeak = Math.max(rssPeak, rssMib(serve.pid))), 250);

/** One timed burst of serve: its rate, and where the two cores went (serve's main thread, all of serve, this client). */
async function serveRound() {
  const before = await count(3);
  const cpu0 = {
    all: cpuSeconds(serve.pid),
    main: mainThreadCpuSeconds(serve.pid),
    threads: threadCpuSeconds(serve.pid),
    bench: process.cpuUsage(),
  };
  const t0 = performance.now();
  await client.burst(TASKS, CONCURRENCY, task, () =>
    say(`  created ${client.created}, results seen ${client.resultsSeen}`),
  );
  for (const deadline = Date.now() + 60_000; (await count(3)) - before < TASKS; await Bun.sleep(1)) {
    if ((await count(4)) > 0) throw new Error(`${await count(4)} task(s) failed during the throughput run`);
    if (Date.now() > deadline)
      throw new Error(`only ${(await count(3)) - before} of ${TASKS} tasks completed in storage`);
  }
  const elapsed = (performance.now() - t0) / 1000;
  const benchCpu = process.cpuUsage(cpu0.bench);
  const share = (seconds: number) => +((100 * seconds) / elapsed).toFixed(1);
  const perTask = (seconds: number) => +((seconds * 1000) / TASKS).toFixed(3);
  const serveCpu = cpuSeconds(serve.pid) - cpu0.all;
  // The same split by thread: JavaScriptCore's compiler threads are mostly warm-up, a cost fixed per run.
  const threads = threadCpuSeconds(serve.pid);
  return {
    seconds: +elapsed.toFixed(3),
    tasks_per_s: Math.round(TASKS / elapsed),
    serve_cpu_ms_per_task: perTask(serveCpu),
    client_cpu_ms_per_task: perTask((benchCpu.user + benchCpu.system) / 1e6),
    serve_cpu_ms_per_task_by_thread: Object.fromEntries(
      Object.entries(threads).map(([k, v]) => [k, perTask(v - cpu0.threads[k as keyof typeof threads])]),
    ),
    serve_main_thread_cpu_percent: share(mainThreadCpuSeconds(serve.pid) - cpu0.main),
    serve_cpu_percent: share(serveCpu),
    bench_cpu_percent: share((benchCpu.user + benchCpu.system) / 1e6),
  };
}

// The machine's floor with the same load (floor.ts), in a process of its own started beside serve; the two take
// turns, a round each, so a change in the machine's speed during the run reaches both (an idle serve or floor
// takes next to nothing). Each side's figures are its round with the median rate; the ratio is the median of the
// rounds' own ratios.
const floor = opt["no-floor"] ? undefined : await startFloor(CONCURRENCY, file, WARM_UP);
const serveRounds: Awaited<ReturnType<typeof serveRound>>[] = [];
const floorRounds: FloorRound[] = [];
try {
  for (let r = 1; r <= ROUNDS; r++) {
    say(`throughput ${r}/${ROUNDS}: ${TASKS} tasks, ${CONCURRENCY} concurrent clients…`);
    serveRounds.push(await serveRound());
    if (floor) {
      say(`floor ${r}/${ROUNDS}: ${TASKS} tasks, ${CONCURRENCY} concurrent clients…`);
      floorRounds.push(await floor.round(TASKS));
    }
  }
} finally {
  await floor?.stop();
}
const served = medianRound(serveRounds);
const floored = floor ? medianRound(floorRounds) : undefined;
const pairRatios = floorRounds.map((f, i) => +(serveRounds[i]!.tasks_per_s / f.tasks_per_s).toFixed(3));
clearInterval(rssWatch);
const dataDirMib = duMib(dataDir);
// Our readers closed first: an open reader keeps SQLite from cutting its WAL back.
db?.close();
await pgSql?.close();
await kv?.close();
if (Number(opt["idle-s"]) > 0) {
  say(`idling ${opt["idle-s"]} s…`);
  await Bun.sleep(Number(opt["idle-s"]) * 1000);
}
const rssAfter = rssMib(serve.pid);
const dataDirIdleMib = duMib(dataDir);
for (const f of readdirSync(dataDir)) say(`  ${f}: ${(statSync(join(dataDir, f)).size / 2 ** 20).toFixed(1)} MiB`);

await client.close();
serve.kill("SIGTERM");
await serve.exited;
if (process.env.BENCH_KEEP) say(`data dir kept: ${dataDir}`);
else rmSync(dataDir, { recursive: true, force: true });
await pg?.stop();
receiver?.stop(true);
const out = {
  samples: lat.length,
  // With --samples 0 there is no latency to report.
  ...(lat.length
    ? {
        p50_ms: +pct(50).toFixed(3),
        p90_ms: +pct(90).toFixed(3),
        p99_ms: +pct(99).toFixed(3),
        max_ms: +lat[lat.length - 1]!.toFixed(3),
      }
    : {}),
  tasks: TASKS,
  concurrency: CONCURRENCY,
  warm_up_tasks: WARM_UP,
  rounds: ROUNDS,
  rounds_tasks_per_s: serveRounds.map((r) => r.tasks_per_s),
  ...(floored
    ? {
        floor_rounds_tasks_per_s: floorRounds.map((r) => r.tasks_per_s),
        floor_tasks_per_s: floored.tasks_per_s,
        // Each serve round over the floor round right after it, and the median of those: a pair shares the machine's
        // state, as two medians taken apart would not.
        rounds_ratio_to_floor: pairRatios,
        ratio_to_floor: pairRatios.toSorted((a, b) => a - b)[Math.floor((pairRatios.length - 1) / 2)],
        floor_cpu_ms_per_task: floored.cpu_ms_per_task,
        floor_client_cpu_ms_per_task: floored.client_cpu_ms_per_task,
        // What the machine's cores have per task at ratio_to_floor 0.6 (issue 30's goal), for serve and its client
        // together: a serve that needs more than this less its client's share cannot reach the goal here.
        cpu_ms_per_task_at_goal: +((availableParallelism() * 1000) / (0.6 * floored.tasks_per_s)).toFixed(3),
      }
    : {}),
  ...served,
  runtime: opt.bin ? "compiled" : "bun",
  storage: opt.storage,
  auth: !opt["no-auth"],
  data_dir_mib: +dataDirMib.toFixed(1),
  data_dir_idle_mib: +dataDirIdleMib.toFixed(1),
  module_kib: Number(opt["module-kib"]),
  rss_before_mib: +rssBefore.toFixed(1),
  rss_peak_mib: +rssPeak.toFixed(1),
  rss_after_mib: +rssAfter.toFixed(1),
  idle_s: Number(opt["idle-s"]),
  ...(receiver ? { tracing_ratio: Number(opt.tracing), spans_received: spansReceived } : {}),
};
console.log(JSON.stringify(out));
