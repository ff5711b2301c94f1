import type { SQL } from "bun";
import { unavailable } from "../../core/errors.ts";
import type { Task } from "../../core/task.ts";
import { tag } from "../../log.ts";
import type { Change, Journal } from "../journal.ts";

const log = tag("storage");

/** Runs inside every write transaction before it commits; throwing aborts it (the lease fence). */
export type Fence = (tx: SQL) => Promise<void>;

const taskRow = (t: Task) => {
  const { file, ...doc } = t;
  return {
    id: t.id,
    state: t.state,
    created_at: t.created_at,
    doc: JSON.stringify(doc),
    file: file ?? null,
    job_id: t.job_id ?? null,
    workflow_id: t.workflow_id ?? null,
    scheduled: Boolean(t.schedule),
  };
};

/** The last write of each row in a batch: a value, or null for a delete. */
class Folded<T> {
  readonly last = new Map<string, T | null>();
  set(id: string, v: T | null): void {
    this.last.delete(id); // re-inserted: the map's order is the order of last writes
    this.last.set(id, v);
  }
  puts(): T[] {
    return [...this.last.values()].filter((v): v is T => v !== null);
  }
  deletes(): string[] {
    return [...this.last].filter(([, v]) => v === null).map(([id]) => id);
  }
}

type Doc = { id: string; created_at: string; doc: string };
const docRow = (v: { id: string; created_at: string }): Doc => ({
  id: v.id,
  created_at: v.created_at,
  doc: JSON.stringify(v),
});

/**
 * Writes the memory store's changes through to PostgreSQL: every change of one event-loop turn in one
 * transaction (group commit, as SQLite's batch), several writes of one row folded into its last. `durable()`
 * resolves when what was recorded before it is committed. A failed commit rejects its waiters and is retried.
 */
export class PgJournal implements Journal {
  private queue: Change[] = [];
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  /** Ignores changes while the store is loaded from the database. */
  paused = false;
  /** Set by `close`: a failed write is not retried any more. */
  private closing = false;
  private retryTimer: Timer | undefined;

  constructor(
    private sql: SQL,
    private fence?: Fence,
  ) {}

  record(c: Change): void {
    if (this.paused) return;
    this.queue.push(c);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  durable(): Promise<void> {
    if (!this.queue.length && !this.flushing) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Commits everything recorded so far; one flush at a time, in order. */
  async flush(): Promise<void> {
    this.scheduled = false;
    while (this.flushing) await this.flushing;
    if (!this.queue.length) {
      for (const w of this.waiters.splice(0)) w.resolve();
      return;
    }
    const batch = this.queue.splice(0);
    const waiters = this.waiters.splice(0);
    this.flushing = this.write(batch).then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (e) => {
        const msg = e instanceof Error ? e.message : String(e);
        // Said as it is: the change is not lost, it is written again until PostgreSQL takes it. "write failed" alone
        // read as "not done", and a client that repeated a create made the task twice once PostgreSQL was back.
        for (const w of waiters)
          w.reject(
            unavailable(
              `storage: PostgreSQL write failed: ${msg}; the change is kept and written again every second until it is taken, so it may still be stored: look before you repeat it`,
            ),
          );
        if (this.closing) {
          log.error(`PostgreSQL write of ${batch.length} change(s) at shutdown failed: ${msg}; they are lost`);
          return;
        }
        log.error(`PostgreSQL write of ${batch.length} change(s) failed: ${msg}; retrying in 1 s`);
        // Upserts and deletes are idempotent: the batch goes again, before anything newer, after a pause.
        this.queue.unshift(...batch);
        this.scheduled = true;
        this.retryTimer = setTimeout(() => void this.flush(), 1000);
      },
    );
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
    }
    // Changes recorded and waiters added while this batch was being written go next.
    if ((this.queue.length || this.waiters.length) && !this.scheduled) void this.flush();
  }

  /** Writes what is left, once, and stops retrying. */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    await this.flush();
  }

  private async write(batch: Change[]): Promise<void> {
    const tasks = new Folded<{ task: Task; withFile: boolean }>();
    const proplets = new Folded<{ id: string; doc: string }>();
    const docs = { jobs: new Folded<Doc>(), tokens: new Folded<Doc>(), entities: new Folded<Doc>() };
    const runs: { task_id: string; run_id: string; started_at: string; doc: string }[] = [];
    const runUpdates: { task_id: string; run_id: string; doc: string }[] = [];
    const fl = new Folded<{ kind: string; id: string; doc: string }>();
    const metrics: { kind: string; owner: string; at: string; doc: string }[] = [];
    /** Per owner at the retention bound, the oldest sample the memory store kept: older rows are deleted. */
    const keepFrom = new Map<string, { kind: string; owner: string; at: string }>();
    for (const c of batch) {
      switch (c.kind) {
        case "task": {
          // A module written earlier in the batch must still be written, whatever came after it.
          const before = tasks.last.get(c.task.id);
          tasks.set(c.task.id, { task: c.task, withFile: c.withFile || Boolean(before?.withFile) });
          break;
        }
        case "task-delete":
          tasks.set(c.id, null);
          break;
        case "proplet":
          proplets.set(c.proplet.id, { id: c.proplet.id, doc: JSON.stringify(c.proplet) });
          break;
        case "proplet-delete":
          proplets.set(c.id, null);
          break;
        case "run":
          runs.push({
            task_id: c.run.task_id,
            run_id: c.run.run_id,
            started_at: c.run.started_at,
            doc: JSON.stringify(c.run),
          });
          break;
        case "run-update":
          runUpdates.push({ task_id: c.run.task_id, run_id: c.run.run_id, doc: JSON.stringify(c.run) });
          break;
        case "job":
          docs.jobs.set(c.job.id, docRow(c.job));
          break;
        case "token":
          docs.tokens.set(c.token.id, docRow(c.token));
          break;
        case "entity":
          docs.entities.set(c.entity.id, docRow(c.entity));
          break;
        case "fl":
          fl.set(`${c.fl_kind}\u0000${c.id}`, { kind: c.fl_kind, id: c.id, doc: c.doc });
          break;
        case "fl-delete":
          fl.set(`${c.fl_kind}\u0000${c.id}`, null);
          break;
        case "metric":
          metrics.push({ kind: c.owner_kind, owner: c.owner, at: c.at, doc: JSON.stringify(c.sample) });
          if (c.keep_from)
            keepFrom.set(`${c.owner_kind}\u0000${c.owner}`, { kind: c.owner_kind, owner: c.owner, at: c.keep_from });
          break;
      }
    }
    const sql = this.sql;
    const taskPuts = tasks.puts();
    await sql.begin(async (tx) => {
      if (this.fence) await this.fence(tx);
      for (const part of chunks(taskPuts.map((c) => taskRow(c.task)))) {
        await tx`INSERT INTO tasks ${sql(part)} ON CONFLICT (id) DO UPDATE SET state = excluded.state,
          doc = excluded.doc, job_id = excluded.job_id, workflow_id = excluded.workflow_id,
          scheduled = excluded.scheduled`;
      }
      // The module is rewritten only when it changed: it can be megabytes, and most writes are state changes.
      for (const c of taskPuts) {
        if (c.withFile) await tx`UPDATE tasks SET file = ${c.task.file ?? null} WHERE id = ${c.task.id}`;
      }
      const gone = tasks.deletes();
      if (gone.length) await tx`DELETE FROM tasks WHERE id IN ${sql(gone)}`;
      for (const part of chunks(proplets.puts())) {
        await tx`INSERT INTO proplets ${sql(part)} ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`;
      }
      const forgotten = proplets.deletes();
      if (forgotten.length) await tx`DELETE FROM proplets WHERE id IN ${sql(forgotten)}`;
      for (const part of chunks(runs)) await tx`INSERT INTO runs ${sql(part)}`;
      // After the inserts: a run stored and updated in one batch ends with its update.
      for (const u of runUpdates) {
        await tx`UPDATE runs SET doc = ${u.doc} WHERE task_id = ${u.task_id} AND run_id = ${u.run_id}`;
      }
      for (const [table, folded] of Object.entries(docs)) {
        for (const part of chunks(folded.puts())) {
          await tx`INSERT INTO ${sql(table)} ${sql(part)} ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`;
        }
      }
      for (const part of chunks(metrics)) await tx`INSERT INTO metrics ${sql(part)}`;
      // One at a time: a model or dataset can be megabytes.
      for (const d of fl.puts()) {
        await tx`INSERT INTO fl_docs ${sql(d)} ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc`;
      }
      for (const key of fl.deletes()) {
        const [kind, id] = key.split("\u0000");
        await tx`DELETE FROM fl_docs WHERE kind = ${kind} AND id = ${id}`;
      }
      // Keeps METRICS_RETENTION samples per owner, as the other backends: the memory store says where its kept
      // samples begin, so the surplus is one index range, not a count.
      for (const k of keepFrom.values()) {
        await tx`DELETE FROM metrics WHERE kind = ${k.kind} AND owner = ${k.owner} AND at < ${k.at}`;
      }
    });
  }
}

/** Multi-row statements of at most 500 rows (PostgreSQL takes at most 65,535 parameters in one). */
function* chunks<T>(rows: T[]): Generator<T[]> {
  for (let i = 0; i < rows.length; i += 500) yield rows.slice(i, i + 500);
}
