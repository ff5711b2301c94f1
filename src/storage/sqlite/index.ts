import { Database, type Statement } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Job } from "../../core/job.ts";
import type { Proplet } from "../../core/proplet.ts";
import type { Run } from "../../core/run.ts";
import type { Task } from "../../core/task.ts";
import type {
  JobRepository,
  ListResult,
  MetricsRepository,
  PropletRepository,
  RunRepository,
  Storage,
  TaskRepository,
} from "../repository.ts";

// SQLite in WAL mode with synchronous=NORMAL: a committed write survives a kill -9 of the process (the OS keeps
// what was written; WAL is fsynced at checkpoints). Writes are grouped: the first write of an event-loop turn
// opens a transaction that commits on setImmediate, so a burst of requests costs one commit, not one each.
// A task is one JSON document plus the columns we filter and sort on; the module bytes live in their own column
// so listing never reads them.

const MIGRATIONS = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     state INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     doc TEXT NOT NULL,
     file TEXT
   )`,
  `CREATE INDEX tasks_created ON tasks(created_at DESC, id DESC)`,
  `CREATE INDEX tasks_state ON tasks(state)`,
  `CREATE TABLE proplets (id TEXT PRIMARY KEY, doc TEXT NOT NULL)`,
  `ALTER TABLE tasks ADD COLUMN job_id TEXT`,
  `ALTER TABLE tasks ADD COLUMN workflow_id TEXT`,
  `ALTER TABLE tasks ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0`,
  `UPDATE tasks SET job_id = json_extract(doc, '$.job_id'), workflow_id = json_extract(doc, '$.workflow_id'),
     scheduled = coalesce(json_extract(doc, '$.schedule'), '') != ''`,
  `CREATE INDEX tasks_job ON tasks(job_id) WHERE job_id IS NOT NULL`,
  `CREATE INDEX tasks_workflow ON tasks(workflow_id) WHERE workflow_id IS NOT NULL`,
  `CREATE INDEX tasks_scheduled ON tasks(scheduled) WHERE scheduled = 1`,
  // Runs are found through their task: no index on the random run id, which would cost a B-tree insert each.
  `CREATE TABLE runs (task_id TEXT NOT NULL, run_id TEXT NOT NULL, started_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE INDEX runs_task ON runs(task_id, started_at DESC)`,
  // The state index changed on every task update and served only start-up scans.
  `DROP INDEX tasks_state`,
  `CREATE TABLE jobs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE TABLE metrics (kind TEXT NOT NULL, owner TEXT NOT NULL, at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE INDEX metrics_owner ON metrics(kind, owner, at DESC)`,
];

/** Samples kept per proplet and per task. */
export const METRICS_RETENTION = 1000;

type TaskRow = { doc: string; file: string | null };

/** Group commit: one open transaction per event-loop turn, and promises for "committed". */
class Batch {
  private open = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  constructor(private db: Database) {}

  /** Called before every write. */
  begin(): void {
    if (this.open) return;
    this.db.run("BEGIN");
    this.open = true;
    setImmediate(() => this.commit());
  }

  commit(): void {
    if (!this.open) return;
    const waiters = this.waiters;
    this.waiters = [];
    this.open = false;
    try {
      this.db.run("COMMIT");
    } catch (e) {
      if (this.db.inTransaction) this.db.run("ROLLBACK");
      for (const w of waiters) w.reject(e);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  durable(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

class SqliteTasks implements TaskRepository {
  private insertQ: Statement;
  private getQ: Statement<TaskRow, [string]>;
  private updateQ: Statement;
  private updateFileQ: Statement;
  private deleteQ: Statement;
  private countQ: Statement<{ n: number }, []>;
  private listQ: Statement<TaskRow, [number, number]>;

  constructor(
    private db: Database,
    private batch: Batch,
  ) {
    this.insertQ = db.query(
      "INSERT INTO tasks (id, state, created_at, doc, file, job_id, workflow_id, scheduled) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.getQ = db.query("SELECT doc, file FROM tasks WHERE id = ?");
    this.updateQ = db.query("UPDATE tasks SET state = ?, doc = ?, scheduled = ? WHERE id = ?");
    this.updateFileQ = db.query("UPDATE tasks SET file = ? WHERE id = ?");
    this.deleteQ = db.query("DELETE FROM tasks WHERE id = ?");
    this.countQ = db.query("SELECT count(*) AS n FROM tasks");
    this.listQ = db.query("SELECT doc, NULL AS file FROM tasks ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
  }

  private static split(t: Task): [string, string | null] {
    const { file, ...rest } = t;
    return [JSON.stringify(rest), file ?? null];
  }

  private static join(row: TaskRow): Task {
    const t = JSON.parse(row.doc) as Task;
    if (row.file) t.file = row.file;
    return t;
  }

  create(task: Task): void {
    this.batch.begin();
    const [doc, file] = SqliteTasks.split(task);
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
  }
  get(id: string): Task | undefined {
    const row = this.getQ.get(id);
    return row ? SqliteTasks.join(row) : undefined;
  }
  update(task: Task, withFile = false): void {
    this.batch.begin();
    const [doc, file] = SqliteTasks.split(task);
    this.updateQ.run(task.state, doc, task.schedule ? 1 : 0, task.id);
    // The module can be megabytes: rewrite it only when it changed, not on every state change.
    if (withFile) this.updateFileQ.run(file, task.id);
  }
  delete(id: string): boolean {
    this.batch.begin();
    return this.deleteQ.run(id).changes > 0;
  }
  list(offset: number, limit: number): ListResult<Task> {
    return { total: this.countQ.get()!.n, items: this.listQ.all(limit, offset).map(SqliteTasks.join) };
  }
  listByState(states: number[]): Task[] {
    const marks = states.map(() => "?").join(",");
    return this.db
      .query<TaskRow, number[]>(`SELECT doc, file FROM tasks WHERE state IN (${marks})`)
      .all(...states)
      .map(SqliteTasks.join);
  }
  listByGroup(kind: "job" | "workflow", id: string): Task[] {
    const col = kind === "job" ? "job_id" : "workflow_id";
    return this.db
      .query<TaskRow, [string]>(`SELECT doc, file FROM tasks WHERE ${col} = ? ORDER BY rowid`)
      .all(id)
      .map(SqliteTasks.join);
  }
  groupIds(kind: "job" | "workflow"): string[] {
    const col = kind === "job" ? "job_id" : "workflow_id";
    return this.db
      .query<{ id: string }, []>(`SELECT DISTINCT ${col} AS id FROM tasks WHERE ${col} IS NOT NULL`)
      .all()
      .map((r) => r.id);
  }
  countByState(): Record<number, number> {
    const out: Record<number, number> = {};
    for (const r of this.db
      .query<{ state: number; n: number }, []>("SELECT state, count(*) AS n FROM tasks GROUP BY state")
      .all())
      out[r.state] = r.n;
    return out;
  }
  listScheduled(): Task[] {
    return this.db
      .query<TaskRow, []>("SELECT doc, NULL AS file FROM tasks WHERE scheduled = 1")
      .all()
      .map(SqliteTasks.join);
  }
}

class SqliteRuns implements RunRepository {
  constructor(
    private db: Database,
    private batch: Batch,
  ) {}
  create(run: Run): void {
    this.batch.begin();
    this.db
      .query("INSERT INTO runs (task_id, run_id, started_at, doc) VALUES (?, ?, ?, ?)")
      .run(run.task_id, run.run_id, run.started_at, JSON.stringify(run));
  }
  listByTask(taskId: string, offset: number, limit: number): ListResult<Run> {
    const total = this.db
      .query<{ n: number }, [string]>("SELECT count(*) AS n FROM runs WHERE task_id = ?")
      .get(taskId)!.n;
    const items = this.db
      .query<{ doc: string }, [string, number, number]>(
        "SELECT doc FROM runs WHERE task_id = ? ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?",
      )
      .all(taskId, limit, offset)
      .map((r) => JSON.parse(r.doc) as Run);
    return { total, items };
  }
}

class SqliteMetrics implements MetricsRepository {
  constructor(
    private db: Database,
    private batch: Batch,
  ) {}
  private add(kind: string, owner: string, at: string, sample: unknown): void {
    this.batch.begin();
    this.db
      .query("INSERT INTO metrics (kind, owner, at, doc) VALUES (?, ?, ?, ?)")
      .run(kind, owner, at, JSON.stringify(sample));
    this.db
      .query(
        "DELETE FROM metrics WHERE rowid IN (SELECT rowid FROM metrics WHERE kind = ? AND owner = ? ORDER BY at DESC LIMIT -1 OFFSET ?)",
      )
      .run(kind, owner, METRICS_RETENTION);
  }
  private list(kind: string, owner: string, offset: number, limit: number): ListResult<unknown> {
    const total = this.db
      .query<{ n: number }, [string, string]>("SELECT count(*) AS n FROM metrics WHERE kind = ? AND owner = ?")
      .get(kind, owner)!.n;
    const items = this.db
      .query<{ doc: string }, [string, string, number, number]>(
        "SELECT doc FROM metrics WHERE kind = ? AND owner = ? ORDER BY at DESC LIMIT ? OFFSET ?",
      )
      .all(kind, owner, limit, offset)
      .map((r) => JSON.parse(r.doc) as unknown);
    return { total, items };
  }
  addProplet(id: string, at: string, sample: unknown): void {
    this.add("proplet", id, at, sample);
  }
  addTask(id: string, at: string, sample: unknown): void {
    this.add("task", id, at, sample);
  }
  listProplet(id: string, offset: number, limit: number): ListResult<unknown> {
    return this.list("proplet", id, offset, limit);
  }
  listTask(id: string, offset: number, limit: number): ListResult<unknown> {
    return this.list("task", id, offset, limit);
  }
}

class SqliteJobs implements JobRepository {
  constructor(
    private db: Database,
    private batch: Batch,
  ) {}
  create(job: Job): void {
    this.batch.begin();
    this.db
      .query("INSERT INTO jobs (id, created_at, doc) VALUES (?, ?, ?)")
      .run(job.id, job.created_at, JSON.stringify(job));
  }
  get(id: string): Job | undefined {
    const row = this.db.query<{ doc: string }, [string]>("SELECT doc FROM jobs WHERE id = ?").get(id);
    return row ? (JSON.parse(row.doc) as Job) : undefined;
  }
  all(): Job[] {
    return this.db
      .query<{ doc: string }, []>("SELECT doc FROM jobs ORDER BY created_at DESC, id")
      .all()
      .map((r) => JSON.parse(r.doc) as Job);
  }
}

class SqliteProplets implements PropletRepository {
  private upsertQ: Statement;
  private getQ: Statement<{ doc: string }, [string]>;
  private deleteQ: Statement;
  private allQ: Statement<{ doc: string }, []>;

  constructor(
    db: Database,
    private batch: Batch,
  ) {
    this.upsertQ = db.query(
      "INSERT INTO proplets (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
    );
    this.getQ = db.query("SELECT doc FROM proplets WHERE id = ?");
    this.deleteQ = db.query("DELETE FROM proplets WHERE id = ?");
    this.allQ = db.query("SELECT doc FROM proplets ORDER BY id");
  }
  upsert(p: Proplet): void {
    this.batch.begin();
    this.upsertQ.run(p.id, JSON.stringify(p));
  }
  get(id: string): Proplet | undefined {
    const row = this.getQ.get(id);
    return row ? (JSON.parse(row.doc) as Proplet) : undefined;
  }
  delete(id: string): boolean {
    this.batch.begin();
    return this.deleteQ.run(id).changes > 0;
  }
  all(): Proplet[] {
    return this.allQ.all().map((r) => JSON.parse(r.doc) as Proplet);
  }
}

function migrate(db: Database): void {
  db.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)");
  const done = db.query<{ v: number | null }, []>("SELECT max(version) AS v FROM schema_migrations").get()?.v ?? 0;
  db.transaction(() => {
    for (let i = done; i < MIGRATIONS.length; i++) {
      db.run(MIGRATIONS[i]!);
      db.run("INSERT INTO schema_migrations (version) VALUES (?)", [i + 1]);
    }
  })();
}

export function openSqlite(path: string): Storage {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  // Checkpoints fsync; at the default (1000 pages) a busy manager paid one every few hundred commits.
  db.run("PRAGMA wal_autocheckpoint = 16000");
  db.run("PRAGMA foreign_keys = ON");
  migrate(db);
  const batch = new Batch(db);
  return {
    tasks: new SqliteTasks(db, batch),
    proplets: new SqliteProplets(db, batch),
    runs: new SqliteRuns(db, batch),
    jobs: new SqliteJobs(db, batch),
    metrics: new SqliteMetrics(db, batch),
    durable: () => batch.durable(),
    close: () => {
      batch.commit();
      db.close();
    },
  };
}
