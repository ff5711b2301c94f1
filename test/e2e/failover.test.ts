import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { b64, freePort, http, type Proc, type Serve, spawnPropeller, tempDir, until, untilAlive } from "../helpers.ts";
import { startMosquitto } from "../mosquitto.ts";
import { type Postgres, startManager, startPostgres } from "../postgres.ts";

// Two managers, one site: both on one PostgreSQL database and one mosquitto. One is active, the other a
// stand-by that forwards REST to it. The active one is killed with -9 in the middle of cron firings and a stream
// of task starts: the stand-by takes over within 5 s, and every firing and every acknowledged task happens once.

let pg: Postgres;
let mosquitto: ReturnType<typeof Bun.spawn>;
let mqttUrl: string;
let dbUrl: string;
const procs: (Serve | Proc)[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  dbUrl = await pg.database("failover");
  const m = await startMosquitto();
  mosquitto = m.proc;
  mqttUrl = m.url;
});

afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
  mosquitto?.kill("SIGKILL");
  await pg?.stop();
});

const manager = (dataDir: string, extra: string[] = [], db = dbUrl, httpPort?: number) =>
  startManager({ dataDir, mqttUrl, env: { PROPELLER_DB_URL: db }, extra, ...(httpPort ? { httpPort } : {}) });

test("kill -9 of the active manager: the stand-by takes over within 5 s; every firing and task happens once", async () => {
  const a = await manager(tempDir());
  procs.push(a);
  expect((await http(`${a.url}/health`)).body).toMatchObject({ role: "active", storage: "postgres" });
  // The second manager's CLI and this test use the site's admin token, as an operator would copy it.
  const bDir = tempDir();
  copyFileSync(join(a.dataDir, "admin.token"), join(bDir, "admin.token"));
  const b = await manager(bDir);
  procs.push(b);
  expect((await http(`${b.url}/health`)).body).toMatchObject({ role: "standby", active_url: a.url });

  const worker = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: mqttUrl,
    PROPLET_ENTITY_ID: "failover-worker",
    PROPLET_LIVELINESS_INTERVAL: "1",
  });
  procs.push(worker);
  await untilAlive(b.url, "failover-worker"); // a read through the stand-by

  // A cron task firing every second, created through the stand-by (forwarded to the active manager).
  const cron = await http(`${b.url}/tasks`, "POST", {
    name: "add",
    file: b64("add"),
    inputs: [1, 2],
    schedule: "* * * * * *",
    is_recurring: true,
  });
  expect(cron.status).toBe(201);

  // A stream of tasks, each created and started; a request that meets the hand-over is retried, as a client would.
  const acknowledged: string[] = [];
  let streaming = true;
  // The address is asked again on each try: one chosen just before the kill must not be retried for good.
  const retrying = async (url: () => Promise<string> | string, method: string, body?: unknown) => {
    for (let i = 0; i < 100; i++) {
      const r = await http(await url(), method, body).catch(() => ({ status: 599, body: undefined }));
      if (r.status !== 503 && r.status !== 599) return r;
      await Bun.sleep(100);
    }
    throw new Error(`${method} ${await url()} kept failing`);
  };
  const stream = (async () => {
    let i = 0;
    while (streaming) {
      const target = i++ % 2 ? a.url : b.url;
      const live = async () => ((await fetch(`${a.url}/health`).catch(() => undefined))?.ok ? target : b.url);
      const c = await retrying(async () => `${await live()}/tasks`, "POST", {
        name: "add",
        file: b64("add"),
        inputs: [i, 1],
      });
      expect(c.status).toBe(201);
      const s = await retrying(() => `${b.url}/tasks/${c.body.id}/start`, "POST");
      // A start whose answer was lost in the hand-over and then retried finds the task started: a 409 saying so.
      if (s.status !== 200) {
        expect({ status: s.status, state: (await http(`${b.url}/tasks/${c.body.id}`)).body.state >= 2 }).toEqual({
          status: 409,
          state: true,
        });
      }
      acknowledged.push(c.body.id);
      await Bun.sleep(50);
    }
  })();

  await Bun.sleep(3000);
  const killedAt = Date.now();
  await a.kill("SIGKILL");
  await until(
    "the stand-by to become active",
    async () => (await http(`${b.url}/health`)).body.role === "active",
    8000,
  );
  const takeover = Date.now() - killedAt;
  expect(takeover).toBeLessThan(5000);
  await Bun.sleep(3000);
  streaming = false;
  await stream;

  // Every acknowledged task completed, with exactly one run.
  const stuck = async () => {
    const out: unknown[] = [];
    for (const id of acknowledged) {
      const t = (await http(`${b.url}/tasks/${id}`)).body;
      if (t.state !== 3) out.push({ id, state: t.state, error: t.error, proplet: t.proplet_id });
    }
    return out;
  };
  await until("every acknowledged task to complete", async () => (await stuck()).length === 0, 20_000).catch(
    async (e) => {
      throw new Error(
        `${e}: ${JSON.stringify(await stuck())}\n--- b ---\n${b.output().slice(-3000)}\n--- a ---\n${a.output().slice(-1500)}\n--- worker ---\n${worker.output().slice(-3000)}`,
      );
    },
  );
  for (const id of acknowledged) {
    const runs = (await http(`${b.url}/tasks/${id}/runs`)).body;
    expect({ id, runs: runs.total }).toEqual({ id, runs: 1 });
  }
  // The cron task fired on both sides of the hand-over, never twice for one second.
  const runs = (await http(`${b.url}/tasks/${cron.body.id}/runs?limit=1000`)).body.runs as { started_at: string }[];
  const seconds = runs.map((r) => r.started_at.slice(0, 19));
  expect(new Set(seconds).size).toBe(seconds.length);
  expect(runs.filter((r) => Date.parse(r.started_at) < killedAt).length).toBeGreaterThan(1);
  expect(runs.filter((r) => Date.parse(r.started_at) > killedAt + takeover).length).toBeGreaterThan(1);
  console.log(JSON.stringify({ takeover_ms: takeover, tasks: acknowledged.length, cron_runs: runs.length }));
}, 90_000);

test("an active manager whose advertised URL leads to the stand-by: the stand-by refuses at once (508), saying what to set", async () => {
  const db = await pg.database("loop");
  const standbyPort = await freePort();
  // The stand-by's own address as the active one's: what a loopback default is on another machine.
  const a = await manager(tempDir(), ["--advertise-url", `http://127.0.0.1:${standbyPort}`], db);
  procs.push(a);
  const bDir = tempDir();
  copyFileSync(join(a.dataDir, "admin.token"), join(bDir, "admin.token"));
  const b = await manager(bDir, [], db, standbyPort);
  procs.push(b);
  expect((await http(`${b.url}/health`)).body).toMatchObject({ role: "standby" });
  const t0 = performance.now();
  const r = await fetch(`${b.url}/tasks`, {
    headers: { authorization: `Bearer ${a.token}` },
    signal: AbortSignal.timeout(5000),
  });
  expect(r.status).toBe(508);
  expect(r.headers.get("propeller-not-acted")).toBe("true");
  expect(((await r.json()) as { error: string }).error).toContain("--advertise-url");
  expect(performance.now() - t0).toBeLessThan(2000);
  expect(b.output()).toContain("leads back to a stand-by");
  // It keeps answering what is its own.
  expect((await http(`${b.url}/health`)).status).toBe(200);
}, 60_000);

test("a second manager on the site's database with its own embedded broker is refused before it stands by", async () => {
  const db = await pg.database("ownbroker");
  const a = await manager(tempDir(), [], db);
  procs.push(a);
  // No --mqtt-url: it would have taken over onto a broker no proplet of the site is on.
  const b = spawnPropeller(
    [
      "serve",
      "--storage",
      "postgres",
      "--no-local-proplet",
      "--data-dir",
      tempDir(),
      "--http-port",
      String(await freePort()),
      "--mqtt-port",
      String(await freePort()),
    ],
    { PROPELLER_DB_URL: db },
  );
  procs.push(b);
  expect(await b.proc.exited).not.toBe(0);
  expect(b.output()).toContain(
    `another manager (${a.url}) holds this site's lease: a stand-by must use the site's broker (--mqtt-url`,
  );
}, 60_000);
