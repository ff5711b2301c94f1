import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { TaskState } from "../../../src/core/states.ts";
import { newTask, TaskCreate } from "../../../src/core/task.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { METRICS_RETENTION } from "../../../src/storage/sqlite/metrics.ts";
import { b64, tempDir } from "../../helpers.ts";

// The SQLite repositories: every field comes back, the module is stored apart, rows are parsed (a malformed one
// is an error naming it), metrics are bounded, and a committed write is on disk for the next process.

let store: Storage | undefined;
afterEach(() => store?.close());

const task = (id: string, extra: Record<string, unknown> = {}) =>
  newTask(id, TaskCreate.parse({ name: "add", file: b64("add"), ...extra }), new Date().toISOString());

describe("sqlite storage", () => {
  test("a task keeps every field; listing leaves the module out", async () => {
    store = openSqlite(":memory:");
    const t = task("t1", {
      inputs: [1, 2],
      env: { A: "b" },
      schedule: "*/5 * * * *",
      timezone: "Europe/Paris",
      priority: 70,
      max_retries: 2,
      metadata: { team: "edge" },
    });
    store.tasks.create(t);
    expect(store.tasks.get("t1")).toEqual(t);
    expect(store.tasks.list(0, 10).items[0]!.file).toBeUndefined();
    expect(store.tasks.listScheduled().map((x) => x.id)).toEqual(["t1"]);
    store.tasks.update({ ...t, state: TaskState.Running, file: "ignored without withFile" });
    expect(store.tasks.get("t1")).toMatchObject({ state: TaskState.Running, file: t.file });
    expect(store.tasks.countByState()).toEqual({ [TaskState.Running]: 1 });
    // A task read without its module (a schedule scan) and written back keeps its module.
    const scanned = store.tasks.listScheduled()[0]!;
    expect(scanned.file).toBeUndefined();
    store.tasks.update({ ...scanned, priority: 10 });
    expect(store.tasks.get("t1")).toMatchObject({ priority: 10, file: t.file });
    const copy = store.tasks.get("t1")!;
    copy.name = "changed by a caller";
    expect(store.tasks.get("t1")!.name).toBe("add");
    store.tasks.delete("t1");
    expect(store.tasks.get("t1")).toBeUndefined();
  });

  test("a malformed row is refused with its table named, not passed on", () => {
    const dir = tempDir();
    const path = join(dir, "p.db");
    store = openSqlite(path);
    store.tasks.create(task("t1"));
    store.close();
    const db = new Database(path);
    db.run(`UPDATE tasks SET doc = json_set(doc, '$.state', 'two') WHERE id = 't1'`);
    db.close();
    store = openSqlite(path);
    expect(() => store!.tasks.get("t1")).toThrow("stored task is malformed: state:");
  });

  test("metrics samples are kept up to the bound, newest first", () => {
    store = openSqlite(":memory:");
    for (let i = 0; i < METRICS_RETENTION + 5; i++) {
      store.metrics.addProplet("p", new Date(1_700_000_000_000 + i * 1000).toISOString(), { i });
    }
    const page = store.metrics.listProplet("p", 0, 2);
    expect(page.total).toBe(METRICS_RETENTION);
    expect(page.items).toEqual([{ i: METRICS_RETENTION + 4 }, { i: METRICS_RETENTION + 3 }]);
  });

  test("what durable() acknowledged is in the file for another connection", async () => {
    const path = join(tempDir(), "d.db");
    store = openSqlite(path);
    store.tasks.create(task("t1"));
    store.jobs.create({ id: "j1", name: "job", execution_mode: "parallel", created_at: new Date().toISOString() });
    await store.durable();
    const other = openSqlite(path);
    expect(other.tasks.get("t1")?.name).toBe("add");
    expect(other.jobs.get("j1")?.execution_mode).toBe("parallel");
    other.close();
  });
});
