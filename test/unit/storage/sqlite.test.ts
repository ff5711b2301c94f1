import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { finished, newTask, runningOn, TaskCreate } from "../../../src/core/task.ts";
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

  test("a task's times are kept as milliseconds after its creation, read back as text, and sort as text did", () => {
    const path = join(tempDir(), "times.db");
    store = openSqlite(path);
    const created = "2026-01-01T00:00:00.000Z";
    const t1 = {
      ...task("t1"),
      created_at: created,
      state: 3,
      start_time: "2026-01-01T00:00:00.018Z",
      finish_time: "2026-01-01T00:00:00.021Z",
      updated_at: "2026-01-01T00:00:00.021Z",
    };
    // A time not in toISOString's own form (no milliseconds) stays the text it was; an earlier one is negative.
    const t2 = { ...t1, id: "t2", start_time: "2025-12-31T23:59:59.000Z", updated_at: "2026-01-02T00:00:00Z" };
    store.tasks.create(t1);
    store.tasks.create(t2);
    store.close();
    const db = new Database(path);
    const docs = db
      .query<{ doc: string }, []>("SELECT doc FROM tasks ORDER BY id")
      .all()
      .map((r) => JSON.parse(r.doc));
    expect(docs[0]).toMatchObject({ start_time: 18, finish_time: 21 });
    expect(docs[0].updated_at).toBeUndefined();
    expect(docs[1]).toMatchObject({ start_time: -1000, finish_time: 21, updated_at: "2026-01-02T00:00:00Z" });
    // A document written before, its times as text, beside them.
    const { file: _f, ...old } = {
      ...t1,
      id: "t3",
      created_at: "2026-01-01T00:00:00.001Z",
      updated_at: "2025-06-01T00:00:00.000Z",
    };
    db.run("INSERT INTO tasks (id, state, created_at, doc, file) VALUES ('t3', 3, ?, ?, NULL)", [
      old.created_at,
      JSON.stringify(old),
    ]);
    db.close();
    store = openSqlite(path);
    expect(store.tasks.get("t1")).toEqual(t1);
    expect(store.tasks.get("t2")).toEqual(t2);
    expect(store.tasks.get("t3")).toEqual(old);
    const bySort = store.tasks.find({ sort: "updated_at", order: "desc", rounds: true }, 0, 10);
    expect(bySort.items.map((t) => t.id)).toEqual(["t2", "t1", "t3"]);
  });

  test("Completed tasks are not in the state index, and are counted and listed by state all the same", async () => {
    const path = join(tempDir(), "states.db");
    store = openSqlite(path);
    const states = [0, 3, 3, 2, 3, 4, 3];
    states.forEach((state, i) => {
      store!.tasks.create({ ...task(`t${i}`), created_at: `2026-01-01T00:00:0${i}.000Z`, state });
    });
    store.tasks.update({ ...store.tasks.get("t0")!, state: 3 });
    await store.durable();
    expect(store.tasks.countByState()).toEqual({ 2: 1, 3: 5, 4: 1 });
    expect(
      store.tasks
        .listByState([2, 4])
        .map((t) => t.id)
        .sort(),
    ).toEqual(["t3", "t5"]);
    const ids = (states: number[], offset = 0) => {
      const r = store!.tasks.find({ states, sort: "created_at", order: "desc", rounds: false }, offset, 3);
      return [r.total, r.items.map((t) => t.id)];
    };
    expect(ids([3])).toEqual([5, ["t6", "t4", "t2"]]);
    expect(ids([3], 3)).toEqual([5, ["t1", "t0"]]);
    expect(ids([3, 4])).toEqual([6, ["t6", "t5", "t4"]]);
    expect(ids([2])).toEqual([1, ["t3"]]);
    const db = new Database(path, { readonly: true });
    const indexed = db.query<{ n: number }, []>(
      "SELECT count(*) AS n FROM tasks INDEXED BY tasks_state_open WHERE state != 3",
    );
    expect(indexed.get()!.n).toBe(2);
    db.close();
  });

  test("flash wear: a task's three commits (created, started, ended) write at most 11 pages to the WAL", async () => {
    // Each commit writes every page it changed, whole, to the WAL (scripts/bench/wear.ts counts the bytes). Before the
    // state index left Completed tasks out and times were kept as milliseconds, this was 13 pages a task.
    const path = join(tempDir(), "wear.db");
    store = openSqlite(path);
    const s = store;
    const walBytes = () => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
    const oneTask = async (i: number) => {
      const t = task(crypto.randomUUID(), { inputs: [i, 1] });
      s.tasks.create(t);
      await s.durable();
      const running = runningOn(t, crypto.randomUUID(), crypto.randomUUID(), new Date().toISOString());
      s.tasks.update(running);
      await s.durable();
      const now = new Date().toISOString();
      const run = { run_id: running.run_id!, task_id: t.id, attempt: 1, state: 3, status: "Completed" };
      s.runs.create({ ...run, started_at: running.start_time, proplet_id: running.proplet_id, finished_at: now });
      s.tasks.update(finished(running, 3, String(i + 1), undefined, now));
      await s.durable();
    };
    for (let i = 0; i < 200; i++) await oneTask(i); // a few levels in every B-tree first
    const before = walBytes();
    for (let i = 0; i < 200; i++) await oneTask(i);
    const pages = (walBytes() - before) / (1024 + 24) / 200;
    expect(pages).toBeGreaterThan(5);
    expect(pages).toBeLessThan(11);
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
