import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  b64,
  FIXTURES,
  http,
  identity,
  MAIN,
  runTask,
  type Serve,
  spawnProplet,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// Jobs, workflows, cron, queueing, daemons, timeouts, retries and recovery, with real processes.

let s: Serve;
beforeAll(async () => {
  // A proplet killed here is gone, not cut off: its runs are given up at once (partitions: partition.test.ts).
  s = await startServe({ extra: ["--liveliness-interval", "1", "--partition-grace", "0"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const get = async (id: string) => (await http(`${s.url}/tasks/${id}`)).body;
const final = (url: string, id: string, timeoutMs = 10_000) =>
  until(
    `task ${id} to end`,
    async () => {
      const t = (await http(`${url}/tasks/${id}`)).body;
      return t.state >= 3 ? t : undefined;
    },
    timeoutMs,
  );
const runs = async (id: string) => (await http(`${s.url}/tasks/${id}/runs`)).body;
const count = (n: number, extra: Record<string, unknown> = {}) => ({
  name: "count",
  file: b64("count"),
  inputs: [n],
  ...extra,
});
const add = (a: number, b: number, extra: Record<string, unknown> = {}) => ({
  name: "add",
  file: b64("add"),
  inputs: [a, b],
  ...extra,
});

describe("jobs", () => {
  test("sequential: the second task starts only after the first finished", async () => {
    const c = await http(`${s.url}/jobs`, "POST", {
      name: "seq",
      execution_mode: "sequential",
      tasks: [count(600_000_000), add(1, 2)],
    });
    expect(c.status).toBe(201);
    const [first, second] = c.body.tasks;
    expect((await http(`${s.url}/jobs/${c.body.job_id}/start`, "POST")).status).toBe(200);
    await until("first running", async () => (await get(first.id)).state === 2);
    expect((await get(second.id)).state).toBe(0); // still Pending while the first runs
    const job = await until("job done", async () => {
      const j = (await http(`${s.url}/jobs/${c.body.job_id}`)).body;
      return j.state === 3 ? j : undefined;
    });
    expect(job.status).toBe("Completed");
    const [t1, t2] = job.tasks;
    expect(Date.parse(t2.start_time)).toBeGreaterThanOrEqual(Date.parse(t1.finish_time));
    expect(t2.results).toBe("3");
  });

  test("fail-fast: a failing task stops running siblings and skips the rest", async () => {
    const p = `ff${Date.now()}`;
    const c = await http(`${s.url}/jobs`, "POST", {
      name: "ff",
      execution_mode: "configurable",
      tasks: [
        { id: `${p}-spin`, name: "spin", file: b64("spin") },
        { id: `${p}-fail`, name: "fail", file: b64("fail") },
        { id: `${p}-after`, name: "add", file: b64("add"), inputs: [1, 1], depends_on: [`${p}-fail`] },
      ],
    });
    expect(c.status).toBe(201);
    await http(`${s.url}/jobs/${c.body.job_id}/start`, "POST");
    const job = await until("job failed", async () => {
      const j = (await http(`${s.url}/jobs/${c.body.job_id}`)).body;
      return j.state === 4 && j.tasks.every((t: { state: number }) => t.state >= 3) ? j : undefined;
    });
    const [spin, fail, after] = job.tasks;
    expect(fail.status).toBe("Failed");
    expect(spin.status).toBe("Failed");
    expect(spin.error).toContain("stopped");
    expect(after.status).toBe("Skipped");
    const failedJobs = (await http(`${s.url}/jobs?status=failed`)).body;
    expect(failedJobs.jobs.map((j: { job_id: string }) => j.job_id)).toContain(c.body.job_id);
    expect((await http(`${s.url}/jobs?status=bogus`)).status).toBe(400);
  });

  test("a user's stop: its running tasks end Interrupted (stopped by user), the rest Skipped, the job Interrupted, not Failed", async () => {
    const p = `js${Date.now()}`;
    const c = await http(`${s.url}/jobs`, "POST", {
      name: "stoppable",
      execution_mode: "configurable",
      tasks: [
        { id: `${p}-spin`, name: "spin", file: b64("spin") },
        { id: `${p}-after`, name: "add", file: b64("add"), inputs: [1, 1], depends_on: [`${p}-spin`] },
      ],
    });
    await http(`${s.url}/jobs/${c.body.job_id}/start`, "POST");
    await until("spin running", async () => (await get(`${p}-spin`)).state === 2);
    const stop = await http(`${s.url}/jobs/${c.body.job_id}/stop`, "POST");
    expect(stop.status).toBe(200);
    const job = await until("job stopped", async () => {
      const j = (await http(`${s.url}/jobs/${c.body.job_id}`)).body;
      return j.tasks.every((t: { state: number }) => t.state >= 3) ? j : undefined;
    });
    const [spin, after] = job.tasks;
    expect(spin.status).toBe("Interrupted");
    expect(spin.error).toStartWith("stopped by user");
    expect(after.status).toBe("Interrupted");
    expect(after.error).toBe(`stopped by user before it started (job ${c.body.job_id} was stopped)`);
    expect(job.status).toBe("Interrupted");
    const listed = (await http(`${s.url}/jobs?status=interrupted`)).body;
    expect(listed.jobs.map((j: { job_id: string }) => j.job_id)).toContain(c.body.job_id);
    // A job never started, stopped: Interrupted too (its tasks all waiting: it was Completed, every task Skipped).
    const idle = await http(`${s.url}/jobs`, "POST", { name: "idle", tasks: [add(1, 1), add(2, 2)] });
    await http(`${s.url}/jobs/${idle.body.job_id}/stop`, "POST");
    expect((await http(`${s.url}/jobs/${idle.body.job_id}`)).body.status).toBe("Interrupted");
  });

  test("a job that ran runs again whole when started again: a sequential one re-ran its first task and stalled", async () => {
    const c = await http(`${s.url}/jobs`, "POST", {
      name: "again",
      execution_mode: "sequential",
      tasks: [add(1, 2), add(3, 4), add(5, 6)],
    });
    const ended = async () =>
      until("job ended", async () => {
        const j = (await http(`${s.url}/jobs/${c.body.job_id}`)).body;
        return j.tasks.every((t: { state: number }) => t.state >= 3) ? j : undefined;
      });
    await http(`${s.url}/jobs/${c.body.job_id}/start`, "POST");
    expect((await ended()).status).toBe("Completed");
    // The CLI says the ended tasks run again (it said only "ok").
    const restarted = Bun.spawnSync([process.execPath, MAIN, "jobs", "start", c.body.job_id], {
      env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
    });
    expect({ code: restarted.exitCode, out: restarted.stdout.toString(), err: restarted.stderr.toString() }).toEqual({
      code: 0,
      out: "ok\n",
      err: `job ${c.body.job_id}: its 3 task(s) that had ended run again (a copy instead: propeller jobs create FILE --fresh)\n`,
    });
    const again = await ended();
    expect(again.status).toBe("Completed");
    for (const t of again.tasks) expect((await runs(t.id)).runs.length).toBe(2);
    expect(again.tasks.map((t: { results: string }) => t.results)).toEqual(["3", "7", "11"]);
  });

  test("unknown job is 404; bad job body is 400", async () => {
    expect((await http(`${s.url}/jobs/nope`)).status).toBe(404);
    const bad = await http(`${s.url}/jobs`, "POST", { name: "x", execution_mode: "sometimes", tasks: [] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("execution_mode");
  });
});

describe("workflows", () => {
  test("workflows stop: the running task ends Interrupted, every waiting one is skipped, also one that runs on its parent's failure", async () => {
    const p = `ws${Date.now()}`;
    const c = await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { id: `${p}-spin`, name: "spin", file: b64("spin") },
        {
          id: `${p}-always`,
          name: "add",
          file: b64("add"),
          inputs: [1, 1],
          depends_on: [`${p}-spin`],
          run_if: "failure",
        },
        { id: `${p}-next`, name: "add", file: b64("add"), inputs: [2, 2], depends_on: [`${p}-always`] },
      ],
    });
    expect(c.status).toBe(201);
    await http(`${s.url}/workflows/${c.body.workflow_id}/start`, "POST");
    await until("spin running", async () => (await get(`${p}-spin`)).state === 2);
    // Started again while it runs: 409, as a task's start (it was 400).
    expect(await http(`${s.url}/workflows/${c.body.workflow_id}/start`, "POST")).toEqual({
      status: 409,
      body: { error: `workflow ${c.body.workflow_id} is already running` },
    });
    const stopped = Bun.spawnSync([process.execPath, MAIN, "workflows", "stop", c.body.workflow_id], {
      env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
    });
    expect(stopped.stderr.toString()).toBe("");
    expect(stopped.exitCode).toBe(0);
    const wf = await until("workflow stopped", async () => {
      const w = (await http(`${s.url}/workflows/${c.body.workflow_id}`)).body;
      return w.tasks.every((t: { state: number }) => t.state >= 3) ? w : undefined;
    });
    const byId = Object.fromEntries(wf.tasks.map((t: { id: string }) => [t.id, t]));
    expect(byId[`${p}-spin`].status).toBe("Interrupted");
    expect(byId[`${p}-always`].status).toBe("Interrupted");
    expect(byId[`${p}-always`].error).toContain("was stopped");
    expect(byId[`${p}-next`].status).toBe("Interrupted");
    expect(wf.status).toBe("Interrupted");
    // Still not run a moment later: nothing started after the stop.
    await Bun.sleep(500);
    expect((await runs(`${p}-always`)).runs).toEqual([]);
    expect((await http(`${s.url}/workflows/nope/stop`, "POST")).status).toBe(404);
  });

  test("a workflow is Running while a task runs, also after a branch failed; a child of a stopped task says so", async () => {
    const p = `wr${Date.now()}`;
    const c = await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { id: `${p}-fail`, name: "fail", file: b64("fail") },
        { id: `${p}-spin`, name: "spin", file: b64("spin") },
        { id: `${p}-child`, name: "add", file: b64("add"), inputs: [1, 1], depends_on: [`${p}-spin`] },
      ],
    });
    await http(`${s.url}/workflows/${c.body.workflow_id}/start`, "POST");
    await until("fail failed, spin running", async () => {
      const w = (await http(`${s.url}/workflows/${c.body.workflow_id}`)).body;
      const st = w.tasks.map((t: { state: number }) => t.state);
      return st[0] === 4 && st[1] === 2 ? w : undefined;
    });
    expect((await http(`${s.url}/workflows/${c.body.workflow_id}`)).body.status).toBe("Running");
    const running = (await http(`${s.url}/workflows?status=running`)).body;
    expect(running.workflows.map((w: { workflow_id: string }) => w.workflow_id)).toContain(c.body.workflow_id);
    await http(`${s.url}/tasks/${p}-spin/stop`, "POST");
    const child = await final(s.url, `${p}-child`);
    expect(child.status).toBe("Skipped");
    expect(child.error).toBe("a task it depends on was stopped");
    expect((await http(`${s.url}/workflows/${c.body.workflow_id}`)).body.status).toBe("Failed");
  });

  test("a cycle, a self-dependency and an unknown dependency are rejected with 400 naming the tasks", async () => {
    const cyc = await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { id: "cy-a", name: "a", depends_on: ["cy-b"] },
        { id: "cy-b", name: "b", depends_on: ["cy-a"] },
      ],
    });
    expect(cyc.status).toBe(400);
    expect(cyc.body.error).toMatch(/circular dependency: cy-(a|b) -> cy-(a|b) -> cy-(a|b)/);
    const self = await http(`${s.url}/workflows`, "POST", {
      tasks: [{ id: "self-a", name: "a", depends_on: ["self-a"] }],
    });
    expect(self.body.error).toContain("self-a depends on itself");
    const unknown = await http(`${s.url}/workflows`, "POST", {
      tasks: [{ id: "un-a", name: "a", depends_on: ["ghost"] }],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toContain("un-a depends on ghost");
  });

  test("diamond: the failure branch runs, the skipped branch takes its whole subtree at once, children get parent_results", async () => {
    const p = `wf${Date.now()}`;
    // The watcher below is a proplet too: the rest runs on serve's own proplet.
    const local = readFileSync(join(s.dataDir, "local-proplet-id"), "utf8").trim();
    const c = await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { id: `${p}-a`, name: "fail", file: b64("fail"), proplet_id: local },
        { id: `${p}-ok`, name: "add", file: b64("add"), inputs: [1, 1], depends_on: [`${p}-a`], proplet_id: local },
        { id: `${p}-ok2`, name: "add", file: b64("add"), inputs: [2, 2], depends_on: [`${p}-ok`], proplet_id: local },
        { id: `${p}-ok3`, name: "add", file: b64("add"), inputs: [3, 3], depends_on: [`${p}-ok2`], proplet_id: local },
        {
          id: `${p}-rescue`,
          name: "count",
          file: b64("count"),
          inputs: [600_000_000],
          depends_on: [`${p}-a`],
          run_if: "failure",
          proplet_id: local,
        },
        {
          id: `${p}-report`,
          name: "add",
          file: b64("add"),
          inputs: [5, 5],
          depends_on: [`${p}-rescue`],
          proplet_id: `watch-${p}`,
        },
      ],
    });
    expect(c.status).toBe(201);
    expect(c.body.workflow_id).toBeTruthy();
    // Watch the start messages on the broker as a proplet sees them: the report is pinned to this one (a proplet
    // receives only the starts meant for it), which answers it as `add` would.
    const T = "m/default/c/default/control";
    const me = `watch-${p}`;
    const login = await identity(s.url, "proplet", me);
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: me, ...login });
    const starts = new Map<string, Record<string, unknown>>();
    watcher.on("message", (_t, payload) => {
      const m = JSON.parse(payload.toString());
      starts.set(m.id, m);
      const result = { task_id: m.id, proplet_id: me, run_id: m.run_id, results: "10" };
      watcher.publish(`${T}/proplet/results`, JSON.stringify(result), { qos: 1 });
    });
    await watcher.subscribeAsync(`${T}/manager/start`);
    await watcher.publishAsync(`${T}/proplet/create`, JSON.stringify({ proplet_id: me, metadata: { max_tasks: 1 } }));
    const beat = setInterval(
      () => watcher.publish(`${T}/proplet/alive`, JSON.stringify({ proplet_id: me, status: "alive" })),
      500,
    );
    const w = c.body.workflow_id as string;
    await http(`${s.url}/workflows/${c.body.workflow_id}/start`, "POST");
    // While the rescue branch runs, the whole success subtree is already Skipped.
    // The client's ids are kept, as upstream.
    await until("rescue running", async () => (await get(`${p}-rescue`)).state === 2);
    for (const id of [`${p}-ok`, `${p}-ok2`, `${p}-ok3`]) expect((await get(id)).status).toBe("Skipped");
    const wf = await until("workflow done", async () => {
      const body = (await http(`${s.url}/workflows/${w}`)).body;
      return body.tasks.every((t: { state: number }) => t.state >= 3) ? body : undefined;
    });
    const byId = Object.fromEntries(wf.tasks.map((t: { id: string }) => [t.id, t]));
    expect(byId[`${p}-a`].status).toBe("Failed");
    expect(byId[`${p}-rescue`].status).toBe("Completed");
    expect(byId[`${p}-report`].status).toBe("Completed");
    expect(wf.status).toBe("Failed");
    expect(starts.get(`${p}-report`)?.parent_results).toEqual({ [`${p}-rescue`]: "600000000" });
    expect(starts.has(`${p}-ok`)).toBe(false);
    clearInterval(beat);
    await watcher.endAsync();
  });

  test("a child cannot be started by hand before its parents end", async () => {
    const p = `dep${Date.now()}`;
    await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { id: `${p}-a`, name: "add", file: b64("add"), inputs: [1, 1] },
        { id: `${p}-b`, name: "add", file: b64("add"), inputs: [1, 1], depends_on: [`${p}-a`] },
      ],
    });
    const r = await http(`${s.url}/tasks/${p}-b/start`, "POST");
    expect(r.status).toBe(409);
    expect(r.body.error).toContain("unmet dependencies");
  });

  test("a parent is not deleted from under its children (they waited for ever), nor a task of a running job", async () => {
    const p = `del${Date.now()}`;
    const w = await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { id: `${p}-p`, name: "spin", file: b64("spin") },
        { id: `${p}-c`, name: "add", file: b64("add"), inputs: [1, 2], depends_on: [`${p}-p`] },
      ],
    });
    await http(`${s.url}/workflows/${w.body.workflow_id}/start`, "POST");
    await until("the parent running", async () => (await get(`${p}-p`)).state === 2);
    const refused = await http(`${s.url}/tasks/${p}-p`, "DELETE");
    expect(refused.status).toBe(409);
    // Nor by a change first: moved out of its workflow (then deleted), or given a schedule of its own.
    for (const [patch, said] of [
      [{ workflow_id: "elsewhere" }, "workflow_id: a task's group is set when its group is created"],
      [{ depends_on: [] }, "depends_on: a task's parents are set when its workflow is created"],
      [
        { schedule: "* * * * *" },
        "schedule: a task of a job or workflow runs when its group is started; schedules are for single tasks",
      ],
      [{ timezone: "Europe/Paris" }, "timezone: goes with a schedule, and none is given"],
    ] as const) {
      const r = await http(`${s.url}/tasks/${p}-c`, "PUT", patch);
      expect({ patch, status: r.status, error: r.body.error }).toEqual({ patch, status: 400, error: said });
    }
    // The same group again is no change (clients send whole tasks back).
    expect((await http(`${s.url}/tasks/${p}-c`, "PUT", { workflow_id: w.body.workflow_id })).status).toBe(200);
    expect(refused.body.error).toBe(
      `task ${p}-p: task ${p}-c of workflow ${w.body.workflow_id} depends on it: delete it first`,
    );
    expect((await get(`${p}-p`)).state).toBe(2);
    // Children first, then the parent: the workflow is gone.
    expect((await http(`${s.url}/tasks/${p}-c`, "DELETE")).status).toBe(204);
    expect((await http(`${s.url}/tasks/${p}-p`, "DELETE")).status).toBe(204);
    expect((await http(`${s.url}/workflows/${w.body.workflow_id}`)).status).toBe(404);

    const j = await http(`${s.url}/jobs`, "POST", {
      name: "deleting",
      execution_mode: "sequential",
      tasks: [
        { id: `${p}-j1`, name: "spin", file: b64("spin") },
        { id: `${p}-j2`, name: "add", file: b64("add"), inputs: [1, 2] },
      ],
    });
    await http(`${s.url}/jobs/${j.body.job_id}/start`, "POST");
    await until("the job's first task running", async () => (await get(`${p}-j1`)).state === 2);
    for (const id of [`${p}-j1`, `${p}-j2`]) {
      const r = await http(`${s.url}/tasks/${id}`, "DELETE");
      expect(r.status).toBe(409);
      expect(r.body.error).toBe(
        `task ${id}: job ${j.body.job_id} is running: stop it first (jobs stop ${j.body.job_id})`,
      );
    }
    // Its next step's module may not be swapped while the job runs: the job was started with the one it had.
    const swap = await http(`${s.url}/tasks/${p}-j2`, "PUT", { file: b64("fib") });
    expect(swap.status).toBe(409);
    expect(swap.body.error).toBe(
      `task ${p}-j2 waits its turn in job ${j.body.job_id}, which is running: stop it first (jobs stop ${j.body.job_id}), or change the module once it has ended`,
    );
    // Other fields of a waiting step may change (its priority, its env).
    expect((await http(`${s.url}/tasks/${p}-j2`, "PUT", { priority: 70 })).status).toBe(200);
    await http(`${s.url}/jobs/${j.body.job_id}/stop`, "POST");
    await until("the job stopped", async () => (await get(`${p}-j1`)).state >= 3);
    expect((await http(`${s.url}/tasks/${p}-j2`, "PUT", { file: b64("fib") })).status).toBe(200);
    expect((await http(`${s.url}/tasks/${p}-j1`, "DELETE")).status).toBe(204);
  });
});

describe("cron", () => {
  test("a seconds-level schedule fires every 2 s, each firing a separate run", async () => {
    const c = await http(`${s.url}/tasks`, "POST", add(2, 3, { schedule: "*/2 * * * * *", is_recurring: true }));
    expect(c.status).toBe(201);
    expect(Date.parse(c.body.next_run)).toBeGreaterThan(Date.now() - 100);
    const r = await until(
      "three runs",
      async () => {
        const v = await runs(c.body.id);
        return v.total >= 3 ? v : undefined;
      },
      9000,
      200,
    );
    const ids = new Set(r.runs.map((x: { run_id: string }) => x.run_id));
    expect(ids.size).toBe(r.runs.length);
    const starts = r.runs.map((x: { started_at: string }) => Date.parse(x.started_at)).sort();
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeGreaterThan(1500);
    await http(`${s.url}/tasks/${c.body.id}`, "DELETE");
  });

  test("misfires after downtime: run_once fires once at start-up, skip waits for the next due time; a one-time schedule skipped ends Skipped", async () => {
    const dataDir = tempDir();
    const a = await startServe({ dataDir });
    // Yearly schedules: their next firing is months away unless we pretend the manager was down over it.
    const once = (
      await http(
        `${a.url}/tasks`,
        "POST",
        add(1, 1, { schedule: "0 0 1 1 *", is_recurring: true, misfire_policy: "run_once" }),
      )
    ).body;
    const skip = (await http(`${a.url}/tasks`, "POST", add(2, 2, { schedule: "0 0 1 1 *", is_recurring: true }))).body;
    const oneShot = (await http(`${a.url}/tasks`, "POST", add(3, 3, { schedule: "0 0 1 1 *", is_recurring: false })))
      .body;
    // One started by hand meanwhile: it ran, so it keeps its state and result (it was Skipped showing its result).
    const ranByHand = (await http(`${a.url}/tasks`, "POST", add(4, 4, { schedule: "0 0 1 1 *", is_recurring: false })))
      .body;
    await http(`${a.url}/tasks/${ranByHand.id}/start`, "POST");
    expect((await final(a.url, ranByHand.id, 5000)).results).toBe("8");
    await a.kill("SIGKILL");
    const db = new Database(join(dataDir, "propeller.db"));
    const past = new Date(Date.now() - 3_600_000).toISOString();
    for (const id of [once.id, skip.id, oneShot.id, ranByHand.id])
      db.query("UPDATE tasks SET doc = json_set(doc, '$.next_run', ?) WHERE id = ?").run(past, id);
    db.close();
    const b = await startServe({ dataDir });
    try {
      const ran = await final(b.url, once.id, 5000);
      expect(ran.results).toBe("2");
      expect(Date.parse(ran.next_run)).toBeGreaterThan(Date.now());
      await Bun.sleep(300);
      const skipped = (await http(`${b.url}/tasks/${skip.id}`)).body;
      expect(skipped.state).toBe(0);
      expect(Date.parse(skipped.next_run)).toBeGreaterThan(Date.now());
      expect((await http(`${b.url}/tasks/${skip.id}/runs`)).body.total).toBe(0);
      // A one-time firing missed under skip is over: it waited Pending for the same date next year, in silence.
      const over = (await http(`${b.url}/tasks/${oneShot.id}`)).body;
      expect({ status: over.status, schedule: over.schedule, next_run: over.next_run }).toEqual({
        status: "Skipped",
        schedule: undefined,
        next_run: "0001-01-01T00:00:00Z",
      });
      expect(over.error).toBe(
        `its one-time schedule (${past}) was missed while the manager was down; misfire_policy skip: not run (run_once runs it late)`,
      );
      expect((await http(`${b.url}/tasks/${oneShot.id}/runs`)).body.total).toBe(0);
      const byHand = (await http(`${b.url}/tasks/${ranByHand.id}`)).body;
      expect({ status: byHand.status, results: byHand.results, schedule: byHand.schedule }).toEqual({
        status: "Completed",
        results: "8",
        schedule: undefined,
      });
    } finally {
      await b.kill("SIGKILL");
    }
  });

  test("stopping a scheduled task ends its run, not its schedule, and says so", async () => {
    const c = await http(
      `${s.url}/tasks`,
      "POST",
      count(8_000_000_000, { schedule: "* * * * * *", is_recurring: true }),
    );
    const id = c.body.id as string;
    await until("its first firing's run", async () => (await http(`${s.url}/tasks/${id}`)).body.state === 2, 5000);
    const stopped = Bun.spawnSync([process.execPath, MAIN, "tasks", "stop", id], {
      env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
    });
    expect({ code: stopped.exitCode, stdout: stopped.stdout.toString() }).toEqual({ code: 0, stdout: "ok\n" });
    // The plain "ok" read as all stopped while the firings went on.
    expect(stopped.stderr.toString()).toMatch(
      new RegExp(`^task ${id}: its schedule goes on \\(next run \\S+\\): propeller tasks pause ${id} holds it\n$`),
    );
    // And `--schedule ''` removes it (it said "nothing to update").
    const unscheduled = Bun.spawnSync([process.execPath, MAIN, "tasks", "update", id, "--schedule", "", "--json"], {
      env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
    });
    expect(unscheduled.exitCode).toBe(0);
    expect((await http(`${s.url}/tasks/${id}`)).body.schedule).toBeUndefined();
    // Between firings there is no run to stop: the refusal says what holds the schedule (it said only "not running").
    const yearly = await http(`${s.url}/tasks`, "POST", add(1, 1, { schedule: "0 0 1 1 *", is_recurring: true }));
    const between = await http(`${s.url}/tasks/${yearly.body.id}/stop`, "POST");
    expect(between.status).toBe(409);
    expect(between.body.error).toBe(
      `task ${yearly.body.id} is not running: its schedule fires next at ${yearly.body.next_run} (propeller tasks pause ${yearly.body.id} holds it)`,
    );
    await http(`${s.url}/tasks/${yearly.body.id}`, "DELETE");
    await http(`${s.url}/tasks/${id}`, "DELETE");
  });

  test("overlap_policy skip drops firings while the previous run is active", async () => {
    const c = await http(
      `${s.url}/tasks`,
      "POST",
      count(8_000_000_000, { schedule: "* * * * * *", is_recurring: true }),
    );
    await Bun.sleep(3500);
    await http(`${s.url}/tasks/${c.body.id}`, "PUT", { schedule: "" });
    const r = await runs(c.body.id);
    // Firing every second for 3.5 s, but each run takes longer than a second.
    expect(r.total).toBeGreaterThanOrEqual(1);
    expect(r.total).toBeLessThanOrEqual(2);
    await http(`${s.url}/tasks/${c.body.id}`, "DELETE");
  });

  test("overlap_policy allow runs firings at once, each run with its own result", async () => {
    const c = await http(`${s.url}/tasks`, "POST", {
      name: "args",
      file: b64("args.component"),
      inputs: ["sleep", "2500"],
      schedule: "* * * * * *",
      is_recurring: true,
      overlap_policy: "allow",
    });
    await until("two runs started", async () => (await runs(c.body.id)).total >= 2, 5000);
    await http(`${s.url}/tasks/${c.body.id}`, "PUT", { schedule: "" });
    const all = await until(
      "every run to end",
      async () => {
        const r = (await runs(c.body.id)).runs as {
          run_id: string;
          state: number;
          started_at: string;
          finished_at?: string;
        }[];
        return r.every((x) => x.state >= 3) && (await http(`${s.url}/tasks/${c.body.id}`)).body.state >= 3
          ? r
          : undefined;
      },
      15_000,
    );
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const r of all) expect(r).toMatchObject({ state: 3, results: "args sleep 2500\n" });
    // Together, not one after another: the second started before the first ended.
    const [first, second] = [...all].sort((a, b) => a.started_at.localeCompare(b.started_at));
    expect(Date.parse(second!.started_at)).toBeLessThan(Date.parse(first!.finished_at!));
    expect(new Set(all.map((r) => r.run_id)).size).toBe(all.length);
    await http(`${s.url}/tasks/${c.body.id}`, "DELETE");
  });

  test("invalid schedules and time zones are 400", async () => {
    const bad = await http(`${s.url}/tasks`, "POST", add(1, 1, { schedule: "61 * * * *" }));
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("schedule");
    const tz = await http(`${s.url}/tasks`, "POST", add(1, 1, { schedule: "* * * * *", timezone: "Mars/Olympus" }));
    expect(tz.status).toBe(400);
    expect(tz.body.error).toContain("timezone");
    // A date no month has: stored with no next run, it never fired.
    const never = await http(`${s.url}/tasks`, "POST", add(1, 1, { schedule: "0 0 30 2 *" }));
    expect(never).toMatchObject({ status: 400, body: { error: expect.stringContaining("never fires") } });
    // Cron settings with no schedule did nothing, in silence; upstream's empty defaults still pass.
    const alone = await http(
      `${s.url}/tasks`,
      "POST",
      add(1, 1, { timezone: "Europe/Paris", overlap_policy: "allow" }),
    );
    expect(alone.status).toBe(400);
    expect(alone.body.error).toContain("timezone: goes with a schedule, and none is given");
    const defaults = await http(
      `${s.url}/tasks`,
      "POST",
      add(1, 1, { schedule: "", timezone: "", is_recurring: false }),
    );
    expect(defaults.status).toBe(201);
    for (const [path, spec, said] of [
      ["/workflows", { tasks: [add(1, 1, { overlap_policy: "skip" })] }, "overlap_policy: goes with a schedule"],
      // A member's schedule fired it alone (a workflow never started ran it once); a group's was ignored.
      ["/workflows", { tasks: [add(1, 1, { schedule: "* * * * *" })] }, "tasks.0.schedule: a task of a job or"],
      ["/jobs", { name: "nightly", schedule: "0 2 * * *", tasks: [add(1, 1)] }, "schedule: a job or workflow has no"],
      ["/jobs", { name: "nightly", cron: "0 2 * * *", tasks: [add(1, 1)] }, "cron: a job or workflow has no"],
      ["/workflows", { timezone: "Europe/Paris", tasks: [add(1, 1)] }, "timezone: a job or workflow has no"],
    ] as const) {
      const r = await http(`${s.url}${path}`, "POST", spec);
      expect({ path, status: r.status }).toEqual({ path, status: 400 });
      expect(r.body.error).toContain(said);
    }
  });
});

describe("timeouts, retries, daemons", () => {
  test("a task with two retries leaves three runs", async () => {
    const c = await http(`${s.url}/tasks`, "POST", {
      name: "fail",
      file: b64("fail"),
      max_retries: 2,
      retry_backoff_s: 0.2,
    });
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    const t = await until("retries exhausted", async () => {
      const v = await get(c.body.id);
      return v.state === 4 ? v : undefined;
    });
    expect(t.attempt).toBe(3);
    const r = await runs(c.body.id);
    expect(r.total).toBe(3);
    expect(r.runs.map((x: { attempt: number }) => x.attempt)).toEqual([3, 2, 1]);
    for (const x of r.runs) expect(x.error).toBe("exit code 3: something went wrong");
  });

  test("a spin loop is killed by its 1 s timeout", async () => {
    const t0 = Date.now();
    const t = await runTask(s.url, { name: "spin", file: b64("spin"), timeout_s: 1 });
    expect(t.state).toBe(4);
    expect(t.error).toContain("timed out after 1s");
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  test("a daemon stays Running until stopped", async () => {
    const c = await http(`${s.url}/tasks`, "POST", { name: "spin", file: b64("spin"), daemon: true });
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    await Bun.sleep(1500);
    expect((await get(c.body.id)).status).toBe("Running");
    await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
    const t = await final(s.url, c.body.id, 3000);
    expect(t.status).toBe("Interrupted");
    expect(t.error).toBe("stopped by user");
  });
});

describe("queueing and recovery", () => {
  test("a busy single-slot proplet runs the high-priority queued task before the low one", async () => {
    const n = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
    const p = await spawnProplet(n, "one-slot", {
      PROPLET_MAX_TASKS: "1",
      PROPLET_LIVELINESS_INTERVAL: "1",
    });
    try {
      await untilAlive(n.url, "one-slot");
      const mk = async (body: Record<string, unknown>) =>
        (await http(`${n.url}/tasks`, "POST", body)).body.id as string;
      const blocker = await mk(count(800_000_000));
      const low = await mk(add(1, 1, { priority: 10 }));
      const high = await mk(add(2, 2, { priority: 90 }));
      expect((await http(`${n.url}/tasks/${blocker}/start`, "POST")).body.status).toBe("Running");
      expect((await http(`${n.url}/tasks/${low}/start`, "POST")).body.status).toBe("Scheduled");
      expect((await http(`${n.url}/tasks/${high}/start`, "POST")).body.status).toBe("Scheduled");
      const [h, l] = [await final(n.url, high), await final(n.url, low)];
      expect(Date.parse(h.start_time)).toBeLessThan(Date.parse(l.start_time));
      expect((await http(`${n.url}/proplets/one-slot`)).body.task_count).toBe(0);
    } finally {
      await p.kill("SIGKILL");
      await n.kill("SIGKILL");
    }
  });

  test("serve killed with -9 while a task runs: after a restart no task stays Running", async () => {
    const dataDir = tempDir();
    const a = await startServe({ dataDir, extra: ["--liveliness-interval", "1"] });
    const c = await http(`${a.url}/tasks`, "POST", { name: "spin", file: b64("spin") });
    await http(`${a.url}/tasks/${c.body.id}/start`, "POST");
    await until("running", async () => (await http(`${a.url}/tasks/${c.body.id}`)).body.state === 2);
    await a.kill("SIGKILL");
    const b = await startServe({ dataDir, extra: ["--liveliness-interval", "1"] });
    try {
      const t = await final(b.url, c.body.id, 6000);
      expect(t.status).toBe("Failed");
      expect(t.error).toMatch(/interrupted|proplet lost/);
      expect((await http(`${b.url}/tasks/${c.body.id}/runs`)).body.runs[0].finished_at).toBeTruthy();
    } finally {
      await b.kill("SIGKILL");
    }
  });

  test("a graceful shutdown marks running tasks Interrupted; a restart fails or retries them", async () => {
    const dataDir = tempDir();
    const a = await startServe({ dataDir });
    const once = await http(`${a.url}/tasks`, "POST", { name: "spin", file: b64("spin") });
    const retried = await http(`${a.url}/tasks`, "POST", {
      name: "spin",
      file: b64("spin"),
      max_retries: 1,
      retry_backoff_s: 0.1,
    });
    for (const id of [once.body.id, retried.body.id]) {
      await http(`${a.url}/tasks/${id}/start`, "POST");
      await until("running", async () => (await http(`${a.url}/tasks/${id}`)).body.state === 2);
    }
    await a.kill("SIGTERM");
    expect(a.proc.exitCode).toBe(0);
    const b = await startServe({ dataDir });
    try {
      const t = (await http(`${b.url}/tasks/${once.body.id}`)).body;
      expect(t.status).toBe("Failed");
      expect(t.error).toBe("interrupted by shutdown");
      const r = (await http(`${b.url}/tasks/${once.body.id}/runs`)).body.runs;
      expect(r[0].status).toBe("Interrupted");
      const again = await until("the retried task to run again", async () => {
        const v = (await http(`${b.url}/tasks/${retried.body.id}`)).body;
        return v.state === 2 ? v : undefined;
      });
      expect(again.attempt).toBe(2);
      await http(`${b.url}/tasks/${retried.body.id}/stop`, "POST");
    } finally {
      await b.kill("SIGKILL");
    }
  });

  test("a task on a proplet killed with -9 is re-queued to another proplet while retries remain", async () => {
    const p = await spawnProplet(s, "victim", {
      PROPLET_LIVELINESS_INTERVAL: "1",
    });
    try {
      await untilAlive(s.url, "victim");
      // Spread until a retried task lands on the victim.
      const c = await http(`${s.url}/tasks`, "POST", count(3_000_000_000, { max_retries: 1, retry_backoff_s: 0.1 }));
      let onVictim = false;
      for (let i = 0; i < 4 && !onVictim; i++) {
        await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
        const t = await until("running", async () => {
          const v = await get(c.body.id);
          return v.state === 2 ? v : undefined;
        });
        onVictim = t.proplet_id === "victim";
        if (!onVictim) {
          await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
          await final(s.url, c.body.id);
        }
      }
      expect(onVictim).toBe(true);
      await p.kill("SIGKILL");
      const moved = await until(
        "re-run elsewhere",
        async () => {
          const v = await get(c.body.id);
          return v.state === 2 && v.proplet_id !== "victim" ? v : undefined;
        },
        5000,
      );
      expect(moved.attempt).toBe(2);
      const r = (await runs(c.body.id)).runs;
      expect(r[1].error).toContain("proplet lost");
      await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
    } finally {
      await p.kill("SIGKILL");
    }
  });
});

describe("CLI", () => {
  test("jobs and workflows from YAML, tasks runs", async () => {
    const dir = tempDir();
    const wasm = join(dir, "add.wasm");
    writeFileSync(wasm, Buffer.from(b64("add"), "base64"));
    const spec = join(dir, "job.yaml");
    writeFileSync(
      spec,
      `name: cli-job\nexecution_mode: sequential\ntasks:\n  - name: add\n    file_path: add.wasm\n    inputs: [1, 2]\n  - name: add\n    file_path: add.wasm\n    inputs: [3, 4]\n`,
    );
    const cli = (args: string[]) =>
      Bun.spawnSync([process.execPath, MAIN, ...args], {
        env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
      });
    const created = cli(["jobs", "create", spec, "--start", "--json"]);
    expect(created.stderr.toString()).toBe("");
    const job = JSON.parse(created.stdout.toString());
    const done = await until("cli job done", async () =>
      (await http(`${s.url}/jobs/${job.job_id}`)).body.state === 3 ? true : undefined,
    );
    expect(done).toBe(true);
    const list = cli(["jobs", "list", "--status", "completed"]);
    expect(list.stdout.toString()).toContain(job.job_id);
    const wf = join(dir, "wf.json");
    writeFileSync(
      wf,
      JSON.stringify({ tasks: [{ id: `cli-${Date.now()}`, name: "add", file_path: "add.wasm", inputs: [5, 5] }] }),
    );
    const w = cli(["workflows", "create", wf, "--start", "--json"]);
    expect(JSON.parse(w.stdout.toString()).workflow_id).toBeTruthy();
    const t = cli([
      "tasks",
      "create",
      "fail",
      "--file",
      join(FIXTURES, "fail.wasm"),
      "--retries",
      "1",
      "--backoff",
      "0.1",
      "--start",
      "--wait",
    ]);
    expect(t.exitCode).toBe(1);
    const id = (await http(`${s.url}/tasks?limit=1`)).body.tasks[0].id;
    const r = cli(["tasks", "runs", id]);
    expect(r.stdout.toString()).toContain("2 of 2 run(s)");
    // Upstream's KEY=VALUE metadata, kept with the task and used to filter the list.
    const tag = `m${Date.now()}`;
    const m = cli(["tasks", "create", "add", "--example", "add", "--metadata", `batch=${tag},zone=eu`, "--json"]);
    const tagged = JSON.parse(m.stdout.toString());
    expect(tagged.metadata).toEqual({ batch: tag, zone: "eu" });
    const found = JSON.parse(cli(["tasks", "list", "--metadata", `batch=${tag}`, "--json"]).stdout.toString());
    expect(found).toMatchObject({ total: 1, tasks: [{ id: tagged.id }] });
    const none = cli(["tasks", "list", "--metadata", `batch=${tag},zone=us`]);
    expect(none.stdout.toString()).toContain("0 of 0 task(s)");
    const wrong = cli(["tasks", "list", "--metadata", "batch"]);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr.toString()).toContain('--metadata: expected KEY=VALUE, got "batch"');
  });
});
