// The floor of this machine for a task: the I/O one task needs durably, with no logic at all, driven by the same
// client as dispatch.ts (load.ts: C concurrent clients, each creating a task over HTTP, starting it, and waiting
// for its result on MQTT). In a process of its own, as serve is:
//   POST /tasks            → a durable INSERT of the request body (SQLite, WAL, synchronous=NORMAL, as
//                            src/storage/sqlite opens it; commits grouped per event-loop turn, as its Batch does)
//   POST /tasks/{id}/start → the row read back, published through aedes (in-process, QoS 0, as serve's manager
//                            publishes to its local proplet) to a subscriber in the same process (as the local
//                            proplet is), which publishes a result back through aedes at once
//   the result             → a durable UPDATE (state 3), and through aedes to the client's MQTT observer
// Plain aedes on node:net (none of serve's own speed-ups to it), hono on Bun.serve, no authentication, no schema
// check, no Wasm. The clock stops when the SQLite file holds N rows in state 3, as dispatch.ts stops it.
//
//   bun scripts/bench/floor.ts [--tasks 10000] [--concurrency 64] [--warm-up 10000] [--rounds 3]
// dispatch.ts runs it in its own call, its rounds taking turns with serve's (`floor_tasks_per_s`, `ratio_to_floor`;
// and the CPU each took per task, which other load on the machine disturbs less than a rate does). A single run of
// either moved by ±15 % from run to run on this machine; each figure is the round with the median tasks/s.
// JSON on the last stdout line.
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes, type AedesPublishPacket } from "aedes";
import { Hono } from "hono";
import { MODULES } from "../../src/examples/modules.ts";
import { scriptArgs } from "../args.ts";
import { cpuSeconds, freePort, waitForHealth } from "./lib.ts";
import { loadClient } from "./load.ts";

const BASE = "m/default/c/default/control";

/** The child: the floor's server on these ports, its database at `dbPath`. */
async function serveFloor(httpPort: number, mqttPort: number, dbPath: string): Promise<void> {
  const db = new Database(dbPath, { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA wal_autocheckpoint = 16000");
  db.run("CREATE TABLE tasks (id TEXT PRIMARY KEY, state INTEGER NOT NULL, body TEXT NOT NULL, results TEXT)");
  const insert = db.prepare("INSERT INTO tasks (id, state, body) VALUES (?, 0, ?)");
  const read = db.prepare<{ body: string }, [string]>("SELECT body FROM tasks WHERE id = ?");
  const done = db.prepare("UPDATE tasks SET state = 3, results = ? WHERE id = ?");
  // Group commit: the first write of a turn opens a transaction, committed on setImmediate.
  let open = false;
  let waiters: (() => void)[] = [];
  const begin = () => {
    if (open) return;
    db.run("BEGIN");
    open = true;
    setImmediate(() => {
      db.run("COMMIT");
      open = false;
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    });
  };
  const durable = () => new Promise<void>((resolve) => waiters.push(resolve));

  const aedes = await Aedes.createBroker({ id: "floor" });
  await new Promise<void>((resolve) => createServer((s) => aedes.handle(s)).listen(mqttPort, "127.0.0.1", resolve));
  const publish = (topic: string, payload: string) =>
    aedes.publish(
      { cmd: "publish", topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false },
      () => {},
    );
  const on = (topic: string, fn: (payload: Buffer) => void) =>
    new Promise<void>((resolve) =>
      aedes.subscribe(
        topic,
        (p: AedesPublishPacket, cb: () => void) => {
          fn(Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload));
          cb();
        },
        resolve,
      ),
    );
  // The proplet: a result for every start, at once.
  await on(`${BASE}/manager/start`, (payload) => {
    const { id } = JSON.parse(payload.toString()) as { id: string };
    publish(`${BASE}/proplet/results`, JSON.stringify({ task_id: id, results: [2] }));
  });
  // The manager: every result stored.
  await on(`${BASE}/proplet/results`, (payload) => {
    const r = JSON.parse(payload.toString()) as { task_id: string; results: unknown };
    begin();
    done.run(JSON.stringify(r.results), r.task_id);
  });

  const app = new Hono();
  app.get("/health", (c) => c.json({ status: "pass" }));
  app.post("/tasks", async (c) => {
    const body = await c.req.text();
    const id = crypto.randomUUID();
    begin();
    insert.run(id, body);
    await durable();
    return c.json({ id }, 201);
  });
  app.post("/tasks/:id/start", (c) => {
    const id = c.req.param("id");
    const row = read.get(id);
    if (!row) return c.json({ error: "not found" }, 404);
    publish(`${BASE}/manager/start`, JSON.stringify({ id, task: JSON.parse(row.body) }));
    return c.json({ started: true });
  });
  Bun.serve({ port: httpPort, hostname: "127.0.0.1", fetch: app.fetch });
  process.stdout.write("ready\n");
}

export interface FloorRound {
  tasks_per_s: number;
  cpu_ms_per_task: number;
  /** The load client's own CPU (this process): it shares the machine's cores with the floor, as with serve. */
  client_cpu_ms_per_task: number;
}

export interface Floor {
  /** One timed burst of `tasks` (after the warm-up, done once at start). */
  round(tasks: number): Promise<FloorRound>;
  stop(): Promise<void>;
}

/** The floor in a child process with the dispatch benchmark's load, warmed up; rounds are timed one at a time. */
export async function startFloor(
  concurrency: number,
  file: string,
  /** Tasks run before any clock starts, as dispatch.ts warms serve. */
  warmUp = 10000,
): Promise<Floor> {
  const dir = mkdtempSync(join(tmpdir(), "propeller-floor-"));
  const dbPath = join(dir, "floor.db");
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const child = Bun.spawn([process.execPath, import.meta.path, "--child", `${httpPort},${mqttPort},${dbPath}`], {
    stdout: "ignore",
    stderr: "inherit",
  });
  const stop = async () => {
    child.kill("SIGKILL");
    await child.exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = `http://127.0.0.1:${httpPort}`;
    await waitForHealth(url);
    const client = await loadClient(url, mqttPort, "", {});
    const task = (i: number) => ({ name: "add", file, inputs: [i, 1] });
    if (warmUp > 0) await client.burst(warmUp, concurrency, task);
    const ro = new Database(dbPath, { readonly: true });
    const count = () => ro.query<{ n: number }, []>("SELECT count(*) AS n FROM tasks WHERE state = 3").all()[0]!.n;
    return {
      async round(tasks) {
        const before = count();
        const cpu0 = cpuSeconds(child.pid);
        const client0 = process.cpuUsage();
        const t0 = performance.now();
        await client.burst(tasks, concurrency, task);
        for (const deadline = Date.now() + 60_000; count() - before < tasks; await Bun.sleep(1)) {
          if (Date.now() > deadline) throw new Error(`floor: only ${count() - before} of ${tasks} tasks stored`);
        }
        const seconds = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(child.pid) - cpu0;
        const clientCpu = process.cpuUsage(client0);
        const msPerTask = (s: number) => +((s * 1000) / tasks).toFixed(3);
        return {
          tasks_per_s: Math.round(tasks / seconds),
          cpu_ms_per_task: msPerTask(cpu),
          client_cpu_ms_per_task: msPerTask((clientCpu.user + clientCpu.system) / 1e6),
        };
      },
      async stop() {
        ro.close();
        await client.close();
        await stop();
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The round with the median tasks/s (the lower middle one of an even count). */
export function medianRound<T extends { tasks_per_s: number }>(rounds: T[]): T {
  return [...rounds].sort((a, b) => a.tasks_per_s - b.tasks_per_s)[Math.floor((rounds.length - 1) / 2)]!;
}

if (import.meta.main) {
  const { values: opt } = scriptArgs(
    import.meta.path,
    {
      options: {
        child: { type: "string" },
        tasks: { type: "string", default: "10000" },
        concurrency: { type: "string", default: "64" },
        "warm-up": { type: "string", default: "10000" },
        rounds: { type: "string", default: "3" },
      },
    },
    { tasks: { min: 1 }, concurrency: { min: 1 }, "warm-up": { min: 0 }, rounds: { min: 1 } },
  );
  if (opt.child) {
    const [http, mqttPort, dbPath] = opt.child.split(",");
    await serveFloor(Number(http), Number(mqttPort), dbPath!);
  } else {
    const tasks = Number(opt.tasks);
    const concurrency = Number(opt.concurrency);
    const floor = await startFloor(concurrency, MODULES.add.wasm, Number(opt["warm-up"]));
    const rounds: FloorRound[] = [];
    try {
      for (let i = 0; i < Number(opt.rounds); i++) rounds.push(await floor.round(tasks));
    } finally {
      await floor.stop();
    }
    const r = medianRound(rounds);
    console.log(
      JSON.stringify({
        tasks,
        concurrency,
        rounds_tasks_per_s: rounds.map((x) => x.tasks_per_s),
        floor_tasks_per_s: r.tasks_per_s,
        floor_cpu_ms_per_task: r.cpu_ms_per_task,
        floor_client_cpu_ms_per_task: r.client_cpu_ms_per_task,
      }),
    );
  }
}
