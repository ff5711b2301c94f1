import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { currentRun, type Run } from "../../../src/core/run.ts";
import { TaskState } from "../../../src/core/states.ts";
import { newTask, type Task, TaskCreate } from "../../../src/core/task.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { b64, tempDir } from "../../helpers.ts";

// SQLite keeps a task's last ended run in the task's row, as what differs from the task (sqlite/last-run.ts). The
// history must read exactly as if every run had its own row: driven here as the dispatcher drives it (the run is
// stored, then the task's outcome, in one transaction), across further runs, retries, edits, late results and a
// restart.

let store: Storage | undefined;
afterEach(() => store?.close());

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

function open(path: string): Storage {
  store = openSqlite(path);
  return store;
}

/** Starts a run of the task on a proplet, as the dispatcher does: the task holds the current run. */
function start(s: Storage, id: string, runId: string, sec: number, proplet = "p1", attempt = 1): Task {
  const t = s.tasks.get(id)!;
  const running = { ...t, state: TaskState.Running, run_id: runId, proplet_id: proplet, attempt, start_time: at(sec) };
  s.tasks.update(running);
  return running;
}

/** Ends the current run: the run record, then the task's outcome; returns the run as recorded. */
function end(s: Storage, t: Task, sec: number, results: unknown, error?: string, retry = false): Run {
  const state = error ? TaskState.Failed : TaskState.Completed;
  const run: Run = {
    ...currentRun(t),
    state,
    status: error ? "Failed" : "Completed",
    finished_at: at(sec),
    results,
    ...(error ? { error } : {}),
  };
  s.runs.create(run);
  const after = retry
    ? { ...t, state: TaskState.Scheduled, attempt: (t.attempt ?? 1) + 1, results, error, finish_time: at(sec) }
    : { ...t, state, results, error, finish_time: at(sec) };
  s.tasks.update(after);
  return run;
}

function runsRows(path: string): number {
  const db = new Database(path, { readonly: true });
  const n = db.query<{ n: number }, []>("SELECT count(*) AS n FROM runs").get()!.n;
  db.close();
  return n;
}

describe("a task's last run in its row", () => {
  test("runs read back as recorded, newest first, across further runs, a retry, an edit and a restart", async () => {
    const path = join(tempDir(), "r.db");
    let s = open(path);
    s.tasks.create(newTask("t1", TaskCreate.parse({ name: "add", file: b64("add") }), at(0)));
    const r1 = end(s, start(s, "t1", "r1", 1), 2, "3");
    await s.durable();
    expect(runsRows(path)).toBe(0); // run once: no row of its own
    expect(s.runs.listByTask("t1", 0, 10)).toEqual({ total: 1, items: [r1] });
    expect(s.runs.get("t1", "r1")).toEqual(r1);

    // A second run, on another proplet, fails and is retried; the retry completes.
    const r2 = end(s, start(s, "t1", "r2", 3, "p2"), 4, undefined, "boom", true);
    const r3 = end(s, start(s, "t1", "r3", 5, "p1", 2), 6, { ok: 1 });
    await s.durable();
    expect(s.runs.listByTask("t1", 0, 10)).toEqual({ total: 3, items: [r3, r2, r1] });
    expect(s.runs.listByTask("t1", 1, 1)).toEqual({ total: 3, items: [r2] });
    expect(s.runs.listByTask("t1", 0, 1)).toEqual({ total: 3, items: [r3] });
    expect(s.runs.listByTask("t1", 2, 5)).toEqual({ total: 3, items: [r1] });

    // Editing the task (pinning it elsewhere) does not rewrite the history.
    s.tasks.update({ ...s.tasks.get("t1")!, proplet_id: "p9", pinned: true, name: "renamed" });
    expect(s.runs.get("t1", "r3")).toEqual(r3);

    // A late result replaces the last run in place.
    const late = { ...r3, results: "late", late_at: at(9) };
    expect(s.runs.update(late)).toBe(true);
    expect(s.runs.update({ ...late, run_id: "none" })).toBe(false);
    await s.durable();
    s.close();
    s = open(path);
    expect(s.runs.listByTask("t1", 0, 10)).toEqual({ total: 3, items: [late, r2, r1] });
    // While a new run is going, the last ended one still lists with the fields it ended with.
    start(s, "t1", "r4", 10, "p3", 1);
    expect(s.runs.listByTask("t1", 0, 10).items[0]).toEqual(late);
  });

  test("caches let go mid-turn (serve quiet after a burst, store.release) change nothing read or written", async () => {
    const path = join(tempDir(), "m.db");
    let s = open(path);
    s.tasks.create(newTask("t1", TaskCreate.parse({ name: "add", file: b64("add") }), at(0)));
    const r1 = end(s, start(s, "t1", "r1", 1), 2, "3");
    s.release?.(); // the transaction open, the first run still waiting to be written with the task
    const r2 = end(s, start(s, "t1", "r2", 3), 4, "4");
    s.release?.();
    const t = s.tasks.get("t1")!;
    expect(t).toMatchObject({ run_id: "r2", results: "4", file: b64("add") });
    expect(s.runs.listByTask("t1", 0, 10)).toEqual({ total: 2, items: [r2, r1] });
    await s.durable();
    s.close();
    s = open(path);
    expect(s.tasks.get("t1")).toEqual(t);
    expect(s.runs.listByTask("t1", 0, 10)).toEqual({ total: 2, items: [r2, r1] });
  });

  test("a run read or listed in the same turn it ended, before the task's outcome is written", () => {
    const s = open(join(tempDir(), "s.db"));
    s.tasks.create(newTask("t1", TaskCreate.parse({ name: "add", file: b64("add") }), at(0)));
    const r1 = end(s, start(s, "t1", "r1", 1), 2, "1");
    const t = start(s, "t1", "r2", 3);
    const r2: Run = { ...currentRun(t), state: 3, status: "Completed", finished_at: at(4), results: "2" };
    s.runs.create(r2);
    expect(s.runs.get("t1", "r2")).toEqual(r2);
    expect(s.runs.listByTask("t1", 0, 10)).toEqual({ total: 2, items: [r2, r1] });
  });

  test("a deleted task's pending run stays in the history; a run of no stored task goes to the table", async () => {
    const path = join(tempDir(), "d.db");
    const s = open(path);
    const lone: Run = { run_id: "x", task_id: "gone", attempt: 1, state: 3, status: "Completed", started_at: at(1) };
    s.runs.create(lone);
    s.tasks.create(newTask("t2", TaskCreate.parse({ name: "add", file: b64("add") }), at(0)));
    const t2 = start(s, "t2", "r1", 1);
    const ended: Run = { ...currentRun(t2), state: 3, status: "Completed", finished_at: at(2), results: "1" };
    s.runs.create(ended);
    expect(s.tasks.delete("t2")).toBe(true);
    await s.durable();
    expect(runsRows(path)).toBe(2);
    expect(s.runs.get("gone", "x")).toEqual(lone);
    expect(s.runs.get("t2", "r1")).toEqual(ended);
  });
});
