import type { Database, Statement } from "bun:sqlite";
import { metadataText } from "../../core/metadata.ts";
import { TaskState } from "../../core/states.ts";
import { Task } from "../../core/task.ts";
import type { TaskFind } from "../../core/task-query.ts";
import { nearerEnd } from "../order.ts";
import type { ListResult, TaskRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { packTask, type TaskColumns, unpackTask } from "./compact.ts";
import { checkDoc } from "./doc.ts";
import { findRows, NOT_COMPLETED } from "./find.ts";
import { LastRuns } from "./last-run.ts";
import { SqliteModules } from "./modules.ts";
import { TaskCache } from "./task-cache.ts";

// A task is one JSON document plus the columns we filter and sort on; its module is kept once per content
// (modules.ts) and the task's own column refers to it, so listing never reads module bytes.

type TaskRow = TaskColumns & { doc: string; file: string | null };

export class SqliteTasks implements TaskRepository {
  private insertQ: Statement;
  private getQ: Statement<TaskRow, [string]>;
  private updateQ: Statement;
  private updateFileQ: Statement;
  private deleteQ: Statement;
  private countQ: Statement<{ n: number }, []>;
  private listQ: Statement<TaskRow, [number, number]>;
  private listOldestQ: Statement<TaskRow, [number, number]>;
  private insertMetaQ: Statement;
  private deleteMetaQ: Statement;
  /** Parsed tasks, so the hot single reads skip parsing; emptied if a commit fails. */
  private cache = new TaskCache();
  private modules: SqliteModules;
  private fileQ: Statement<{ file: string | null }, [string]>;
  /** Each task's last ended run, kept in its row (last-run.ts); the runs repository shares it. */
  readonly lastRuns: LastRuns;

  constructor(
    private db: Database,
    private batch: Batch,
  ) {
    this.insertQ = db.query(
      "INSERT INTO tasks (id, state, created_at, doc, file, job_id, workflow_id, scheduled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.getQ = db.query("SELECT id, state, created_at, doc, file FROM tasks WHERE id = ?");
    this.updateQ = db.query("UPDATE tasks SET state = ?, doc = ?, scheduled = ?, last_run = ? WHERE id = ?");
    this.updateFileQ = db.query("UPDATE tasks SET file = ? WHERE id = ?");
    this.deleteQ = db.query("DELETE FROM tasks WHERE id = ?");
    this.countQ = db.query("SELECT count(*) AS n FROM tasks");
    this.listQ = db.query(
      `SELECT id, state, created_at, doc, NULL AS file FROM tasks ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`,
    );
    this.listOldestQ = db.query(
      "SELECT id, state, created_at, doc, NULL AS file FROM tasks ORDER BY created_at, id LIMIT ? OFFSET ?",
    );
    this.insertMetaQ = db.query(
      "INSERT OR IGNORE INTO task_meta (key, value, created_at, task_id) VALUES (?, ?, ?, ?)",
    );
    this.deleteMetaQ = db.query("DELETE FROM task_meta WHERE task_id = ?");
    this.fileQ = db.query("SELECT file FROM tasks WHERE id = ?");
    this.modules = new SqliteModules(db);
    // LastRuns only reads the task: the cached document as it is, not a copy of it.
    this.lastRuns = new LastRuns(db, batch, (id) => this.cache.peek(id) ?? this.get(id));
    batch.onRollback(() => {
      this.cache.clear();
      this.modules.clear();
    });
  }

  /** Lets go of the parsed tasks, modules and last-run columns it keeps (serve quiet after a burst, site.ts). */
  release(): void {
    this.cache.clear();
    this.modules.clear();
    this.lastRuns.release();
  }

  private join = (row: TaskRow): Task => {
    const t = checkDoc(Task, unpackTask(row.doc, row), `task ${row.id}`);
    const file = this.modules.resolve(row.file);
    if (file) t.file = file;
    return t;
  };

  create(task: Task): void {
    this.batch.begin();
    const module = task.file;
    const rest = withoutFile(task);
    const doc = packTask(rest);
    const file = module ? this.modules.store(module) : null;
    this.cache.put(rest, this.modules.shared(file, module));
    this.insertQ.run(
      task.id,
      task.state,
      task.created_at,
      doc,
      file,
      task.job_id ?? null,
      task.workflow_id ?? null,
      task.schedule ? 1 : 0,
    );
    this.writeMeta(task, undefined);
    this.lastRuns.created(task.id);
  }
  get(id: string): Task | undefined {
    const hit = this.cache.get(id);
    if (hit) return hit;
    const row = this.getQ.get(id);
    if (!row) return undefined;
    const t = this.join(row);
    const { file, ...doc } = t;
    this.cache.put(doc, file);
    return t;
  }
  update(task: Task, withFile = false): void {
    this.batch.begin();
    // The metadata written before, when the cache knows it (null: unknown, rewrite the pairs).
    this.writeMeta(task, this.cache.metadataOf(task.id));
    const file = task.file;
    const rest = withoutFile(task);
    const lastRun = this.lastRuns.columnFor(rest);
    this.updateQ.run(task.state, packTask(rest), task.schedule ? 1 : 0, lastRun, task.id);
    // The module can be megabytes: rewrite it only when it changed, not on every state change.
    if (withFile) {
      this.modules.unref(this.fileQ.get(task.id)?.file);
      const column = file ? this.modules.store(file) : null;
      this.updateFileQ.run(column, task.id);
      this.cache.put(rest, this.modules.shared(column, file));
    } else this.cache.putDoc(rest);
  }
  delete(id: string): boolean {
    this.batch.begin();
    this.cache.delete(id);
    this.lastRuns.forget(id);
    this.deleteMetaQ.run(id);
    this.modules.unref(this.fileQ.get(id)?.file);
    return this.deleteQ.run(id).changes > 0;
  }
  list(offset: number, limit: number, metadata?: Record<string, string>): ListResult<Task> {
    if (!metadata || !Object.keys(metadata).length) {
      const total = this.countQ.get()!.n;
      const page = nearerEnd(total, offset, limit);
      const rows = (page.reverse ? this.listOldestQ : this.listQ).all(page.limit, page.offset);
      return { total, items: (page.reverse ? rows.reverse() : rows).map(this.join) };
    }
    // The first pair walks task_meta in listing order; every other pair must be there for the same task.
    const [first, ...rest] = Object.entries(metadata) as [[string, string], ...[string, string][]];
    const also = rest
      .map(() => " AND EXISTS (SELECT 1 FROM task_meta x WHERE x.task_id = m.task_id AND x.key = ? AND x.value = ?)")
      .join("");
    const params = [...first, ...rest.flat()];
    const where = `m.key = ? AND m.value = ?${also}`;
    const total = this.db
      .query<{ n: number }, string[]>(`SELECT count(*) AS n FROM task_meta m WHERE ${where}`)
      .get(...params)!.n;
    const page = nearerEnd(total, offset, limit);
    const order = page.reverse ? "m.created_at, m.task_id" : "m.created_at DESC, m.task_id DESC";
    const rows = this.db
      .query<TaskRow, (string | number)[]>(
        `SELECT t.id, t.state, t.created_at, t.doc, NULL AS file FROM task_meta m JOIN tasks t ON t.id = m.task_id WHERE ${where}
         ORDER BY ${order} LIMIT ? OFFSET ?`,
      )
      .all(...params, page.limit, page.offset);
    return { total, items: (page.reverse ? rows.reverse() : rows).map(this.join) };
  }

  find(f: TaskFind, offset: number, limit: number): ListResult<Task> {
    const r = findRows(this.db, f, offset, limit);
    return { total: r.total, items: r.rows.map(this.join) };
  }

  /** The task's metadata pairs in task_meta; `before` is what was written last, when it is known. */
  private writeMeta(t: Task, before: Task["metadata"] | null): void {
    // The same object (the manager's tasks are spread copies that share their nested values) needs no comparing.
    if (before !== null && (before === t.metadata || JSON.stringify(before ?? {}) === JSON.stringify(t.metadata ?? {})))
      return;
    if (before !== undefined) this.deleteMetaQ.run(t.id);
    for (const [k, v] of Object.entries(t.metadata ?? {})) {
      const text = metadataText(v);
      if (text !== undefined) this.insertMetaQ.run(k, text, t.created_at, t.id);
    }
  }

  listByState(states: number[]): Task[] {
    const marks = states.map(() => "?").join(",");
    // Without Completed, the partial index tasks_state_open has them all (its condition named so SQLite takes it).
    const open = states.includes(TaskState.Completed) ? "" : ` AND ${NOT_COMPLETED}`;
    return this.db
      .query<TaskRow, number[]>(`SELECT id, state, created_at, doc, file FROM tasks WHERE state IN (${marks})${open}`)
      .all(...states)
      .map(this.join);
  }
  listByGroup(kind: "job" | "workflow", id: string): Task[] {
    const col = kind === "job" ? "job_id" : "workflow_id";
    return this.db
      .query<TaskRow, [string]>(`SELECT id, state, created_at, doc, file FROM tasks WHERE ${col} = ? ORDER BY rowid`)
      .all(id)
      .map(this.join);
  }
  groupIds(kind: "job" | "workflow"): string[] {
    const col = kind === "job" ? "job_id" : "workflow_id";
    return this.db
      .query<{ id: string }, []>(`SELECT DISTINCT ${col} AS id FROM tasks WHERE ${col} IS NOT NULL`)
      .all()
      .map((r) => r.id);
  }
  countByState(): Record<number, number> {
    // The index holds every state but Completed: those are all the tasks less the others.
    const out: Record<number, number> = {};
    let others = 0;
    for (const r of this.db
      .query<{ state: number; n: number }, []>(
        `SELECT state, count(*) AS n FROM tasks WHERE ${NOT_COMPLETED} GROUP BY state`,
      )
      .all()) {
      out[r.state] = r.n;
      others += r.n;
    }
    const completed = this.countQ.get()!.n - others;
    if (completed > 0) out[TaskState.Completed] = completed;
    return out;
  }
  listScheduled(): Task[] {
    return this.db
      .query<TaskRow, []>("SELECT id, state, created_at, doc, NULL AS file FROM tasks WHERE scheduled = 1")
      .all()
      .map(this.join);
  }
  idsStartingWith(prefix: string, limit: number): string[] {
    // A range on the primary key: [prefix, prefix + U+FFFF) holds exactly the ids that start with it.
    return this.db
      .query<{ id: string }, [string, string, number]>(
        "SELECT id FROM tasks WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
      )
      .all(prefix, `${prefix}\uffff`, limit)
      .map((r) => r.id);
  }
}

/**
 * The task's document without its module, as a copy whose `file` is undefined (which JSON leaves out). Not
 * `const { file, ...rest } = task`: JavaScriptCore copies for a rest pattern key by key, ~10 times slower than a
 * spread; two writes of every task made it ~2 % of serve's main thread under the dispatch benchmark.
 */
function withoutFile(task: Task): Omit<Task, "file"> {
  const doc: Task = { ...task };
  doc.file = undefined;
  return doc;
}
