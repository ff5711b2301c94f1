import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { newTask, TaskCreate } from "../../../src/core/task.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { MIGRATIONS } from "../../../src/storage/sqlite/migrations.ts";
import { b64, ROOT, tempDir } from "../../helpers.ts";

// What only SQLite has to show: rows are parsed on the way out (a malformed one is an error naming it). The
// behaviour every backend shares is in contract.test.ts.

let store: Storage | undefined;
afterEach(() => store?.close());

const task = (id: string, extra: Record<string, unknown> = {}) =>
  newTask(id, TaskCreate.parse({ name: "add", file: b64("add"), ...extra }), new Date().toISOString());

describe("sqlite storage", () => {
  test("a module many tasks carry is stored once, and goes with the last task that carries it", async () => {
    const path = join(tempDir(), "m.db");
    store = openSqlite(path);
    // 28 KB modules; a module of a few bytes (`add`) stays inline, where it costs less than a reference.
    for (let i = 0; i < 50; i++) store.tasks.create(task(`t${i}`, { file: b64("hello") }));
    store.tasks.create(task("other", { file: b64("ticker") }));
    store.tasks.create(task("tiny"));
    await store.durable();
    const db = new Database(path, { readonly: true });
    const rows = () =>
      db
        .query<{ refs: number }, []>("SELECT refs FROM modules ORDER BY refs")
        .all()
        .map((r) => r.refs);
    expect(rows()).toEqual([1, 50]);
    expect(store.tasks.get("t7")?.file).toBe(b64("hello"));
    expect(store.tasks.get("tiny")?.file).toBe(b64("add"));
    // A task given another module moves its count; deleting every carrier removes the module.
    store.tasks.update({ ...store.tasks.get("t0")!, file: b64("ticker") }, true);
    for (let i = 1; i < 50; i++) store.tasks.delete(`t${i}`);
    await store.durable();
    expect(rows()).toEqual([2]);
    expect(store.tasks.get("t0")?.file).toBe(b64("ticker"));
    db.close();
  });

  test("a database made by an earlier release (schema 19) upgrades in place, keeps every field and indexes its metadata", () => {
    const path = join(tempDir(), "old.db");
    copyFileSync(join(ROOT, "test", "fixtures", "stores", "sqlite-v19.db"), path);
    const before = JSON.parse(readFileSync(join(ROOT, "test", "fixtures", "stores", "sqlite-v19.task.json"), "utf8"));
    store = openSqlite(path);
    expect(store.tasks.get(before.id)).toEqual(before);
    expect(store.tasks.listScheduled().map((t) => t.id)).toEqual([before.id]);
    expect(store.runs.listByTask(before.id, 0, 10).items[0]).toMatchObject({ run_id: "r1", results: "3" });
    expect(store.jobs.get("j1")?.name).toBe("job");
    // Migration 20 indexed the metadata the old file already held.
    expect(store.tasks.list(0, 10, { team: "edge" }).items.map((t) => t.id)).toEqual([before.id]);
    store.close();
    const db = new Database(path);
    expect(db.query<{ v: number }, []>("SELECT max(version) AS v FROM schema_migrations").get()!.v).toBe(
      MIGRATIONS.length,
    );
    db.close();
    store = undefined;
  });

  test("a document written in full (before documents left out their columns and defaults) reads the same", () => {
    const dir = tempDir();
    const path = join(dir, "p.db");
    store = openSqlite(path);
    const t = { ...task("t1"), state: 3, results: "3", start_time: "2026-01-01T00:00:01.000Z" };
    store.tasks.create(t);
    const run = {
      run_id: "r1",
      task_id: "t1",
      attempt: 1,
      state: 3,
      status: "Completed",
      started_at: "2026-01-01T00:00:01.000Z",
      results: "3",
    };
    store.runs.create(run);
    store.close();
    const db = new Database(path);
    const packed = db.query<{ doc: string }, []>("SELECT doc FROM tasks").get()!.doc;
    expect(Object.keys(JSON.parse(packed)).sort()).toEqual(["name", "results", "start_time", "updated_at"]);
    expect(Object.keys(JSON.parse(db.query<{ doc: string }, []>("SELECT doc FROM runs").get()!.doc)).sort()).toEqual([
      "attempt",
      "results",
      "state",
    ]);
    const { file: _module, ...doc } = t;
    db.run("UPDATE tasks SET doc = ? WHERE id = 't1'", [JSON.stringify(doc)]);
    db.run("UPDATE runs SET doc = ? WHERE run_id = 'r1'", [JSON.stringify(run)]);
    db.close();
    store = openSqlite(path);
    expect(store.tasks.get("t1")).toEqual(t);
    expect(store.runs.get("t1", "r1")).toEqual(run);
  });

  test("a finished task's update time, its finish time, is stored once and reads back", () => {
    const path = join(tempDir(), "u.db");
    store = openSqlite(path);
    const end = "2026-01-01T00:00:02.000Z";
    const done = { ...task("t1"), state: 3, finish_time: end, updated_at: end };
    const edited = { ...done, id: "t2", updated_at: "2026-01-01T00:00:03.000Z" };
    store.tasks.create(done);
    store.tasks.create(edited);
    store.close();
    const db = new Database(path, { readonly: true });
    const docs = db.query<{ doc: string }, []>("SELECT doc FROM tasks ORDER BY id").all();
    db.close();
    expect(docs.map((d) => "updated_at" in JSON.parse(d.doc))).toEqual([false, true]);
    store = openSqlite(path);
    expect(store.tasks.get("t1")).toEqual(done);
    expect(store.tasks.get("t2")).toEqual(edited);
  });

  test("a malformed row is refused with its table named, not passed on", () => {
    const dir = tempDir();
    const path = join(dir, "p.db");
    store = openSqlite(path);
    store.tasks.create(task("t1"));
    store.close();
    const db = new Database(path);
    db.run(`UPDATE tasks SET doc = json_set(doc, '$.priority', 'high') WHERE id = 't1'`);
    db.close();
    store = openSqlite(path);
    expect(() => store!.tasks.get("t1")).toThrow("stored task t1 is malformed: priority:");
  });
});
