import { afterEach, describe, expect, test } from "bun:test";
import { JobCreate, WorkflowCreate } from "../../../src/core/job.ts";
import { TaskState } from "../../../src/core/states.ts";
import { dumpStore, readArchive, restoreStore } from "../../../src/storage/archive.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { b64 } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// Jobs and workflows in-process: they progress on the dispatcher's "task final" events, never inside its calls.

let h: Harness;
afterEach(() => h?.close());

const task = (id: string, extra: Record<string, unknown> = {}) => ({ id, name: "add", file: b64("add"), ...extra });
const stateOf = (id: string) => h.m.tasks.get(id).state;

describe("groups", () => {
  test("a sequential job starts each task when the one before it completes", async () => {
    h = harness();
    h.proplet("p1");
    const job = await h.m.groups.createJob(
      JobCreate.parse({ name: "seq", execution_mode: "sequential", tasks: [task("a"), task("b"), task("c")] }),
    );
    await h.m.groups.startJob(job.job_id);
    expect([stateOf("a"), stateOf("b"), stateOf("c")]).toEqual([TaskState.Running, 0, 0]);
    h.result("a", "p1", "1");
    // The next step is taken on the event seam, after the result's own call has returned.
    expect(stateOf("b")).toBe(TaskState.Pending);
    await h.settle();
    expect(stateOf("b")).toBe(TaskState.Running);
    h.result("b", "p1", "2");
    await h.settle();
    h.result("c", "p1", "3");
    await h.settle();
    expect(h.m.groups.getJob(job.job_id)).toMatchObject({ state: TaskState.Completed, status: "Completed" });
  });

  test("a job's or workflow's task may not be latent and a broadcast at once (stored so, its parts ran as plain tasks)", () => {
    h = harness(); // afterEach closes the one this file's tests hold
    const both = task("x", { latent: true, broadcast: true });
    for (const parse of [
      () => JobCreate.parse({ name: "j", tasks: [both] }),
      () => WorkflowCreate.parse({ tasks: [both] }),
    ])
      expect(parse).toThrow("a latent task cannot be a broadcast");
  });

  test("a job's task ids are the client's; taken ones are refused; a fresh copy runs under its own", async () => {
    h = harness();
    h.proplet("p1");
    const spec = () => JobCreate.parse({ name: "seq", execution_mode: "sequential", tasks: [task("j1"), task("j2")] });
    const first = await h.m.groups.createJob(spec());
    expect(first.tasks.map((t) => t.id)).toEqual(["j1", "j2"]);
    await expect(h.m.groups.createJob(spec())).rejects.toThrow("task id j1 already exists");
    expect(h.m.groups.listJobs(0, 10).total).toBe(1);
    const copy = await h.m.groups.createJob(spec(), true);
    expect(copy.tasks.map((t) => [t.id, t.local_id])).toEqual([
      [`${copy.job_id}.j1`, "j1"],
      [`${copy.job_id}.j2`, "j2"],
    ]);
    await h.m.groups.startJob(copy.job_id);
    h.result(`${copy.job_id}.j1`, "p1", "1");
    await h.settle();
    expect(stateOf(`${copy.job_id}.j2`)).toBe(TaskState.Running);
    expect(stateOf("j2")).toBe(TaskState.Pending);
  });

  test("a job fails fast: the first failure stops its running tasks and skips the rest", async () => {
    h = harness();
    h.proplet("p1");
    const tasks = [task("a"), task("b"), task("c", { depends_on: ["a"] })];
    const job = await h.m.groups.createJob(JobCreate.parse({ name: "par", execution_mode: "parallel", tasks }));
    await h.m.groups.startJob(job.job_id);
    h.result("a", "p1", "", "boom");
    await h.settle();
    expect(h.bus.stops.map((s) => s.id)).toEqual(["b"]);
    expect(h.m.tasks.get("c")).toMatchObject({ state: TaskState.Skipped, error: `job ${job.job_id} failed at task a` });
  });

  test("a workflow follows run_if: the failure branch runs, the success branch is skipped with its subtree", async () => {
    h = harness();
    h.proplet("p1");
    const tasks = [
      task("root"),
      task("on-ok", { depends_on: ["root"], run_if: "success" }),
      task("after-ok", { depends_on: ["on-ok"] }),
      task("on-fail", { depends_on: ["root"], run_if: "failure" }),
    ];
    const wf = await h.m.groups.createWorkflow(WorkflowCreate.parse({ tasks }));
    const id = (local: string) => local; // the client's ids are kept, as upstream
    await h.m.groups.startWorkflow(wf.workflow_id);
    h.result(id("root"), "p1", "", "boom");
    await h.settle();
    expect(stateOf(id("on-fail"))).toBe(TaskState.Running);
    expect(stateOf(id("on-ok"))).toBe(TaskState.Skipped);
    expect(stateOf(id("after-ok"))).toBe(TaskState.Skipped);
    // Only completed parents pass results on: a failed one passes none.
    expect(h.bus.starts.find((s) => s.id === id("on-fail"))?.parent_results).toBeUndefined();
  });

  test("a child gets its completed parents' results; a graph with a cycle or a duplicate id is refused", async () => {
    h = harness();
    h.proplet("p1");
    const file = () => WorkflowCreate.parse({ tasks: [task("p"), task("c", { depends_on: ["p"] })] });
    const wf = await h.m.groups.createWorkflow(file());
    // The client's ids are kept, as upstream: a client polls its own ids.
    expect(wf.tasks.map((t) => t.id)).toEqual(["p", "c"]);
    await h.m.groups.startWorkflow(wf.workflow_id);
    h.result("p", "p1", "42");
    await h.settle();
    expect(h.bus.starts.find((s) => s.id === "c")?.parent_results).toEqual({ p: "42" });
    // The same file again: its ids are taken, refused naming the first.
    await expect(h.m.groups.createWorkflow(file())).rejects.toThrow("task id p already exists");
    expect(h.m.groups.listWorkflows(0, 10).total).toBe(1);
    // A fresh copy: its ids are its own, and results still go by the file's ids.
    const again = await h.m.groups.createWorkflow(file(), true);
    expect(again.workflow_id).not.toBe(wf.workflow_id);
    expect(again.tasks.map((t) => t.id)).toEqual([`${again.workflow_id}.p`, `${again.workflow_id}.c`]);
    expect(again.tasks.map((t) => t.local_id)).toEqual(["p", "c"]);
    expect(again.tasks[1]!.depends_on).toEqual([`${again.workflow_id}.p`]);
    await h.m.groups.startWorkflow(again.workflow_id);
    h.result(`${again.workflow_id}.p`, "p1", "43");
    await h.settle();
    expect(h.bus.starts.find((s) => s.id === `${again.workflow_id}.c`)?.parent_results).toEqual({ p: "43" });
    // A workflow id given by the file and taken is refused too, unless fresh.
    const named = () =>
      WorkflowCreate.parse({ tasks: [task("n1", { workflow_id: "nightly" }), task("n2", { workflow_id: "nightly" })] });
    expect((await h.m.groups.createWorkflow(named())).workflow_id).toBe("nightly");
    await expect(h.m.groups.createWorkflow(named())).rejects.toThrow("workflow nightly already exists");
    expect((await h.m.groups.createWorkflow(named(), true)).workflow_id).not.toBe("nightly");
    const cycle = WorkflowCreate.parse({
      tasks: [task("x", { depends_on: ["y"] }), task("y", { depends_on: ["x"] })],
    });
    await expect(h.m.groups.createWorkflow(cycle)).rejects.toThrow("tasks: circular dependency: x -> y -> x");
    const dup = WorkflowCreate.parse({ tasks: [task("d"), task("d")] });
    await expect(h.m.groups.createWorkflow(dup)).rejects.toThrow("tasks: id d is used twice");
  });
});

test("a sequential job keeps its order through a backup and a restore (tasks made in one millisecond came back in id order)", async () => {
  h = harness();
  const ids = ["zz-first", "mm-second", "aa-third"];
  const job = await h.m.groups.createJob(
    JobCreate.parse({ name: "seq", execution_mode: "sequential", tasks: ids.map((id) => task(id)) }),
  );
  const copy = openSqlite(":memory:");
  try {
    await restoreStore(copy, readArchive(dumpStore(h.store).join("")).records);
    expect(copy.tasks.listByGroup("job", job.job_id).map((t) => t.id)).toEqual(ids);
  } finally {
    await copy.close();
  }
});
