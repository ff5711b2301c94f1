import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { TaskState } from "../../../src/core/states.ts";
import { Identities } from "../../../src/manager/identities.ts";
import { Manager } from "../../../src/manager/manager.ts";
import { type Harness, harness } from "./harness.ts";

// Issue 26: a manager that meets a run its proplet no longer lists asks the proplet (the run's start again, same
// run id) when the proplet keeps a run record, instead of guessing; and a result for a run it does not know still
// leaves a run of its own.

let h: Harness;
afterEach(async () => {
  setSystemTime();
  await h?.close();
});

const opts = { livelinessThresholdMs: 30_000, scheduler: "round-robin" as const };

/** A task Running on p1 as a manager that died left it, and the manager that takes over. */
async function takenOver(metadata: Record<string, unknown>) {
  h = harness();
  h.m.inbound.create({ proplet_id: "p1", metadata });
  const id = await h.create({ name: "add", max_retries: 1, retry_backoff_s: 0.01 });
  await h.m.tasks.start(id);
  const t = h.store.tasks.get(id)!;
  h.store.tasks.update({ ...t, start_time: new Date(Date.now() - 10_000).toISOString() });
  await h.settle();
  const next = new Manager(h.store, h.bus, new Identities(h.store), opts);
  next.recover(true);
  next.inbound.create({ proplet_id: "p1", metadata });
  return { id, runId: t.run_id!, next };
}

describe("asking a proplet with a run record", () => {
  test("a takeover sends the same start again and takes the result the proplet has: one run, no new start", async () => {
    const { id, runId, next } = await takenOver({ run_ids: true, run_record: true });
    next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [], runs: [] });
    await h.settle();
    const starts = h.bus.starts.filter((m) => m.id === id);
    expect(starts.map((m) => m.run_id)).toEqual([runId, runId]);
    expect(h.store.tasks.get(id)).toMatchObject({ state: TaskState.Running, run_id: runId });
    // A second heartbeat before the answer asks nothing more.
    next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [], runs: [] });
    await h.settle();
    expect(h.bus.starts.filter((m) => m.id === id)).toHaveLength(2);
    // The proplet finished it while no manager was active: its result comes again.
    next.inbound.result({ task_id: id, proplet_id: "p1", run_id: runId, results: "3", error: null });
    expect(next.tasks.get(id)).toMatchObject({ state: TaskState.Completed, results: "3" });
    expect(next.tasks.runs(id, 0, 10).items.map((r) => [r.run_id, r.state])).toEqual([[runId, TaskState.Completed]]);
    await next.shutdown();
  });

  test("a proplet killed mid-run answers with a failure: retried per its retries, never run again as new", async () => {
    const { id, runId, next } = await takenOver({ run_ids: true, run_record: true });
    next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [], runs: [] });
    await h.settle();
    const error = "interrupted: the proplet stopped while the run was in progress";
    next.inbound.result({ task_id: id, proplet_id: "p1", run_id: runId, results: "", error });
    const runs = next.tasks.runs(id, 0, 10).items;
    expect(runs.map((r) => [r.run_id, r.state, r.error])).toEqual([[runId, TaskState.Failed, error]]);
    expect(next.tasks.get(id)).toMatchObject({ attempt: 2 });
    await next.shutdown();
  });

  test("no answer within the grace: the run is settled as lost (then retried), not started again", async () => {
    const { id, runId, next } = await takenOver({ run_ids: true, run_record: true });
    next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [], runs: [] });
    await h.settle();
    setSystemTime(new Date(Date.now() + 11_000));
    next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [], runs: [] });
    await h.settle();
    const runs = next.tasks.runs(id, 0, 10).items;
    expect(runs.map((r) => [r.run_id, r.state, r.settled])).toEqual([[runId, TaskState.Failed, true]]);
    expect(h.bus.starts.filter((m) => m.run_id === runId)).toHaveLength(2);
    await next.shutdown();
  });

  test("a proplet without a record (upstream's) keeps today's behaviour: the start is taken as lost", async () => {
    const { id, runId, next } = await takenOver({});
    next.inbound.alive({ proplet_id: "p1", status: "alive", tasks: [] });
    await h.settle();
    const starts = h.bus.starts.filter((m) => m.id === id);
    expect(starts).toHaveLength(2);
    expect(starts[1]!.run_id).not.toBe(runId);
    await next.shutdown();
  });
});

describe("every execution is recorded", () => {
  test("a result for a run the manager does not know leaves a run of its own; the current run is untouched", async () => {
    h = harness();
    h.m.inbound.create({ proplet_id: "p1", metadata: { run_ids: true } });
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    await h.settle();
    const current = h.store.tasks.get(id)!.run_id!;
    const other = crypto.randomUUID();
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: other, results: "3", error: null });
    h.m.inbound.result({ task_id: id, proplet_id: "p1", run_id: other, results: "3", error: null }); // a repeat
    expect(h.store.tasks.get(id)).toMatchObject({ state: TaskState.Running, run_id: current });
    const runs = h.m.tasks.runs(id, 0, 10).items;
    expect(runs.map((r) => [r.run_id, r.state, r.proplet_id, typeof r.late_at])).toEqual([
      [current, TaskState.Running, "p1", "undefined"],
      [other, TaskState.Completed, "p1", "string"],
    ]);
  });

  test("invented run ids add at most 100 runs to a task, and none from a proplet it was never given", async () => {
    h = harness();
    h.proplet("p1");
    h.proplet("p2");
    const id = await h.create({ name: "add" });
    const forge = (proplet: string) => {
      for (let i = 0; i < 150; i++)
        h.m.inbound.result({ task_id: id, proplet_id: proplet, run_id: `forged-${i}`, results: "", error: "x" });
    };
    forge("p1"); // the task never ran: on no proplet
    expect(h.m.tasks.runs(id, 0, 1000).total).toBe(0);
    await h.m.tasks.start(id);
    await h.settle();
    const on = h.store.tasks.get(id)!.proplet_id!;
    forge(on === "p1" ? "p2" : "p1"); // not its proplet
    expect(h.m.tasks.runs(id, 0, 1000).total).toBe(1); // its own current run
    forge(on);
    // 100 of the 150 are kept, beside the current run.
    expect(h.m.tasks.runs(id, 0, 1000).total).toBe(101);
  });
});
