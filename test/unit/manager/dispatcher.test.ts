import { afterEach, describe, expect, test } from "bun:test";
import { AppError } from "../../../src/core/errors.ts";
import { TaskState } from "../../../src/core/states.ts";
import { Identities } from "../../../src/manager/identities.ts";
import { Manager } from "../../../src/manager/manager.ts";
import { until } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// The dispatcher in-process: queue, placement, runs, retries, stops and lost proplets, against SQLite in memory
// and a recording bus.

let h: Harness;
afterEach(() => h?.close());

const state = (id: string) => h.m.tasks.get(id).state;

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "none";
  } catch (e) {
    return e instanceof AppError ? e.kind : `not an AppError: ${e}`;
  }
}

describe("dispatcher", () => {
  test("a start goes to the alive proplet as a unicast start message; its result completes the task", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "add", inputs: [10, 20] });
    expect(await h.m.tasks.start(id)).toEqual({ started: true, state: TaskState.Running, status: "Running" });
    await h.settle();
    expect(h.bus.starts).toHaveLength(1);
    expect(h.bus.starts[0]).toMatchObject({
      id,
      name: "add",
      proplet_id: "p1",
      broadcast: false,
      inputs: ["10", "20"],
    });
    h.result(id, "p1", "30");
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Completed, results: "30", status: "Completed" });
    const runs = h.m.tasks.runs(id, 0, 10);
    expect(runs.total).toBe(1);
    expect(runs.items[0]).toMatchObject({ attempt: 1, state: TaskState.Completed, proplet_id: "p1", results: "30" });
    await h.settle();
    expect(h.m.telemetry.counters).toEqual({ starts: 1, completions: 1, failures: 0, interruptions: 0 });
  });

  test("with no free slot a task waits Scheduled, and the queue drains by priority when a slot frees", async () => {
    h = harness();
    h.proplet("p1", 1);
    const first = await h.create({ name: "first" });
    const low = await h.create({ name: "low", priority: 10 });
    const high = await h.create({ name: "high", priority: 90 });
    await h.m.tasks.start(first);
    expect((await h.m.tasks.start(low)).state).toBe(TaskState.Scheduled);
    expect((await h.m.tasks.start(high)).state).toBe(TaskState.Scheduled);
    expect(h.m.dispatcher.queueDepth).toBe(2);
    h.result(first, "p1", "ok");
    expect(state(high)).toBe(TaskState.Running);
    expect(state(low)).toBe(TaskState.Scheduled);
  });

  test("a failed run is retried after its backoff, and the runs are kept apart", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "flaky", max_retries: 1, retry_backoff_s: 0.05 });
    await h.m.tasks.start(id);
    h.result(id, "p1", "", "boom");
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Scheduled, attempt: 2, error: "boom" });
    await until("the retry to be dispatched", () => state(id) === TaskState.Running, 2000);
    h.result(id, "p1", "", "boom again");
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Failed, error: "boom again" });
    expect(h.m.tasks.runs(id, 0, 10).items.map((r) => r.attempt)).toEqual([2, 1]);
  });

  test("refusals: unknown task, no module, already running, pinned to an unknown proplet, unmet dependencies", async () => {
    h = harness();
    h.proplet("p1");
    expect(await kindOf(h.m.tasks.start("nope"))).toBe("not_found");
    const noModule = await h.create({ name: "x", file: undefined });
    expect(await kindOf(h.m.tasks.start(noModule))).toBe("invalid");
    const running = await h.create({ name: "add" });
    await h.m.tasks.start(running);
    expect(await kindOf(h.m.tasks.start(running))).toBe("conflict");
    const pinned = await h.create({ name: "add", proplet_id: "ghost" });
    expect(await kindOf(h.m.tasks.start(pinned))).toBe("not_found");
    const child = await h.create({ name: "add", depends_on: [running] });
    expect(await kindOf(h.m.tasks.start(child))).toBe("conflict");
  });

  test("a result from another proplet than the one running the task is ignored", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    h.result(id, "intruder", "999");
    expect(state(id)).toBe(TaskState.Running);
  });

  test("a stop asked by a user ends Interrupted, told apart from a failure, without a proplet or with one", async () => {
    h = harness();
    h.proplet("p1", 1);
    const running = await h.create({ name: "busy" });
    const waiting = await h.create({ name: "waiting" });
    await h.m.tasks.start(running);
    await h.m.tasks.start(waiting);
    await h.m.tasks.stop(waiting);
    expect(h.m.tasks.get(waiting)).toMatchObject({
      state: TaskState.Interrupted,
      error: "stopped by user before it started",
    });
    await h.m.tasks.stop(running);
    expect(h.bus.stops).toEqual([{ id: running, broadcast: false, proplet_id: "p1" }]);
    // The proplet answers the stop; a stop ends the retry series even with retries left.
    h.result(running, "p1", "", "task stopped");
    expect(h.m.tasks.get(running)).toMatchObject({ state: TaskState.Interrupted, error: "stopped by user" });
    await h.settle();
    // Only the run that reached a proplet counts; a stopped run is no failure.
    expect(h.m.telemetry.counters).toMatchObject({ failures: 0, interruptions: 1 });
  });

  test("results are fenced by run: a repeat or a stale run's result never changes the task", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "add", max_retries: 1, retry_backoff_s: 0.01 });
    await h.m.tasks.start(id);
    await h.settle();
    const first = h.bus.starts[0]!;
    // (Not toMatchObject with expect.any: Bun 1.4.5 writes the matcher into the object it checks.)
    expect([first.attempt, typeof first.run_id]).toEqual([1, "string"]);
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: first.run_id, results: "", error: "boom" });
    await until("the retry to run", () => state(id) === TaskState.Running, 2000);
    await h.settle();
    const second = h.bus.starts[1]!;
    expect(second).toMatchObject({ attempt: 2 });
    expect(second.run_id).not.toBe(first.run_id);
    // The first run's result again (QoS 1 may repeat it): dropped; the task runs on, its run unchanged.
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: first.run_id, results: "late", error: null });
    expect(state(id)).toBe(TaskState.Running);
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: second.run_id, results: "30", error: null });
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: second.run_id, results: "again", error: null });
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Completed, results: "30" });
    const runs = h.m.tasks.runs(id, 0, 10).items;
    expect(runs.map((r) => [r.attempt, r.results, r.late_at])).toEqual([
      [2, "30", undefined],
      [1, "", undefined],
    ]);
  });

  test("a run beside the current one (overlap allow) has its own result; heartbeats keep each run by its id", async () => {
    h = harness();
    h.m.inbound.create({ proplet_id: "p1", metadata: { max_tasks: 4, run_ids: true } });
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    expect(h.m.dispatcher.startExtra(id)).toBe(true);
    await h.settle();
    const [main, extra] = [h.bus.starts[0]!.run_id!, h.bus.starts[1]!.run_id!];
    expect(main).not.toBe(extra);
    // Both listed under the same task: both kept, even once the heartbeat grace for fresh starts is over.
    const beat = (runs: string[]) =>
      h.m.inbound.alive({ proplet_id: "p1", status: "alive", tasks: runs.map(() => id), runs });
    await Bun.sleep(3100);
    beat([main, extra]);
    expect(h.m.tasks.get(id).state).toBe(TaskState.Running);
    // Another proplet saw the start message (every proplet does): its result for this run is not taken.
    h.m.inbound.create({ proplet_id: "p2", metadata: { run_ids: true } });
    h.m.inbound.result({ task_id: id, proplet_id: "p2", run_id: extra, results: "forged", error: null });
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: extra, results: "extra", error: null });
    expect(h.m.tasks.get(id).state).toBe(TaskState.Running); // the task follows its current run only
    beat([main]);
    expect(h.m.tasks.get(id).state).toBe(TaskState.Running);
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: main, results: "main", error: null });
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Completed, results: "main" });
    const runs = h.m.tasks.runs(id, 0, 10).items;
    expect(runs.map((r) => [r.run_id, r.results]).sort()).toEqual(
      [
        [extra, "extra"],
        [main, "main"],
      ].sort(),
    );
  });

  test("an unreachable proplet keeps its runs for the partition grace, then they are settled", async () => {
    h = harness({ livelinessThresholdMs: 100, partitionGraceMs: 400 });
    h.proplet("p1");
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    h.m.inbound.alive({ proplet_id: "p1", status: "offline" }); // its Last Will: cut off or crashed, who knows
    await Bun.sleep(200);
    h.m.liveness.check();
    expect(h.m.tasks.get(id)).toMatchObject({
      state: TaskState.Running,
      proplet_unreachable_since: expect.any(String),
    });
    await Bun.sleep(400);
    h.m.liveness.check();
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Failed });
    expect(h.m.tasks.get(id).error).toContain("proplet lost: p1 stopped sending heartbeats (unreachable longer than");
    // Its result coming late is kept on that run, and only from p1: another proplet knows the run id too.
    await h.settle();
    const runId = h.bus.starts[0]!.run_id!;
    h.m.inbound.create({ proplet_id: "p2", metadata: {} });
    h.m.inbound.result({ task_id: id, proplet_id: "p2", run_id: runId, results: "forged", error: null });
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: runId, results: "30", error: null });
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: runId, results: "again", error: null });
    expect(h.m.tasks.runs(id, 0, 10).items).toMatchObject([
      { run_id: runId, state: TaskState.Completed, results: "30" },
    ]);
    expect(h.m.tasks.get(id).state).toBe(TaskState.Failed); // the task keeps its final state
  });

  test("a proplet that goes offline loses its runs, which re-run elsewhere while retries remain", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "add", max_retries: 1, retry_backoff_s: 0.01 });
    await h.m.tasks.start(id);
    h.proplet("p2");
    h.m.inbound.alive({ proplet_id: "p1", status: "offline" });
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Scheduled, error: "proplet lost: p1 went offline" });
    await until("the retry to run on p2", () => h.m.tasks.get(id).proplet_id === "p2", 2000);
    expect(state(id)).toBe(TaskState.Running);
  });

  test("deleting a running task frees its slot at once: the waiting task runs without waiting for anything", async () => {
    h = harness();
    h.proplet("p1", 1);
    const running = await h.create({ name: "busy" });
    const waiting = await h.create({ name: "next" });
    await h.m.tasks.start(running);
    await h.m.tasks.start(waiting);
    await h.m.tasks.delete(running);
    expect(h.bus.stops).toEqual([{ id: running, broadcast: false, proplet_id: "p1" }]);
    expect(state(waiting)).toBe(TaskState.Running);
    // A late result for the deleted task changes nothing.
    h.result(running, "p1", "late");
    expect(h.m.proplets.view("p1").task_count).toBe(1);
  });

  test("a run its proplet no longer lists is settled, and the proplet is told to stop it", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    // The heartbeat grace: a run younger than 3 s may still be on its way to the proplet.
    const t = h.store.tasks.get(id)!;
    h.store.tasks.update({ ...t, start_time: new Date(Date.now() - 10_000).toISOString() });
    h.m.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [] });
    expect(h.m.tasks.get(id)).toMatchObject({ state: TaskState.Failed, error: expect.stringContaining("interrupted") });
    expect(h.bus.stops).toEqual([{ id, broadcast: false, proplet_id: "p1" }]);
  });

  test("task metrics are kept only from the proplet running the task", async () => {
    h = harness();
    h.proplet("p1");
    h.proplet("p2");
    const id = await h.create({ name: "add", proplet_id: "p1" });
    await h.m.tasks.start(id);
    h.m.inbound.taskMetrics({ task_id: id, proplet_id: "p2", metrics: { cpu_percent: 1 } });
    h.m.inbound.taskMetrics({ task_id: "no-such-task", proplet_id: "p1", metrics: { cpu_percent: 1 } });
    expect(h.m.telemetry.taskMetrics(id, 0, 10).total).toBe(0);
    h.m.inbound.taskMetrics({ task_id: id, proplet_id: "p1", metrics: { cpu_percent: 2 } });
    expect(h.m.telemetry.taskMetrics(id, 0, 10).total).toBe(1);
  });

  test("a start that cannot be published fails the task with the reason", async () => {
    h = harness();
    h.proplet("p1");
    h.bus.failStarts = true;
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    await until("the task to fail", () => state(id) === TaskState.Failed, 2000);
    expect(h.m.tasks.get(id).error).toBe("failed to publish start message: broker unreachable");
  });

  test("shutdown marks running tasks Interrupted, refuses new starts, and the next manager fails them", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    await h.m.shutdown();
    expect(state(id)).toBe(TaskState.Interrupted);
    expect(h.bus.stops).toEqual([{ id, broadcast: false, proplet_id: "p1" }]);
    expect(await kindOf(h.m.tasks.start(id))).toBe("unavailable");
    const opts = { livelinessThresholdMs: 30_000, scheduler: "round-robin" as const };
    const next = new Manager(h.store, h.bus, new Identities(h.store), opts);
    next.recover();
    expect(next.tasks.get(id)).toMatchObject({ state: TaskState.Failed, error: "interrupted by shutdown" });
  });

  test("a takeover starts again a run its proplet never got; a plain restart fails it as lost", async () => {
    for (const takeover of [true, false]) {
      h = harness();
      h.proplet("p1");
      const id = await h.create({ name: "add" });
      await h.m.tasks.start(id);
      // The manager died right after storing the run (its start never reached p1), long enough ago to be settled.
      const t = h.store.tasks.get(id)!;
      h.store.tasks.update({ ...t, start_time: new Date(Date.now() - 10_000).toISOString() });
      await h.settle();
      const opts = { livelinessThresholdMs: 30_000, scheduler: "round-robin" as const };
      const next = new Manager(h.store, h.bus, new Identities(h.store), opts);
      next.recover(takeover);
      next.inbound.create({ proplet_id: "p1", metadata: {} });
      next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [] });
      await h.settle();
      if (takeover) {
        expect(next.tasks.get(id)).toMatchObject({ state: TaskState.Running, proplet_id: "p1" });
        expect(h.bus.starts.filter((m) => m.id === id)).toHaveLength(2);
        // No failed run is recorded for the start that never left: the one run listed is the current one.
        expect(next.tasks.runs(id, 0, 10).items.map((r) => r.state)).toEqual([TaskState.Running]);
      } else {
        expect(next.tasks.get(id)).toMatchObject({ state: TaskState.Failed });
        expect(next.tasks.get(id).error).toContain("no longer running the task");
      }
      await next.shutdown();
    }
  });
});
