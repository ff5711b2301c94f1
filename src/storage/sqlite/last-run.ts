import type { Database, Statement } from "bun:sqlite";
import { Lru } from "../../core/lru.ts";
import { Run } from "../../core/run.ts";
import type { Task } from "../../core/task.ts";
import type { Batch } from "./batch.ts";
import { packLastRun, packRun, runFieldsDiffer, unpackLastRun } from "./compact.ts";
import { checkDoc } from "./doc.ts";

// A task's last ended run lives in the task's row (`last_run`, packed by compact.ts as what differs from the task).
// The rule kept: the row's last_run, put together with the row's task, is the run as recorded.
//  - A run that ends as its task's current run waits in `pending` and is written with the task's next write (the
//    dispatcher stores the run, then the task's outcome, in one transaction), or just before the commit.
//  - When a run ends while the task has a last run already, the older one moves to the runs table.
//  - A write of the task that changes a field the last run takes from it re-packs the last run against the new task.
// Anything else (runs beside the current one, runs of tasks not stored) goes to the runs table as before.

type Doc = Omit<Task, "file">;

/** last_run columns as last read or written, by task id: the hot tasks' writes need no read. */
const KNOWN_ENTRIES = 4096;

export class LastRuns {
  private pending = new Map<string, Run>();
  private known = new Lru<string, string | null>(KNOWN_ENTRIES);
  private readQ: Statement<{ last_run: string | null }, [string]>;
  private writeQ: Statement;
  private insertRunQ: Statement;

  constructor(
    db: Database,
    batch: Batch,
    /** The task as stored now (with this transaction's writes). */
    private task: (id: string) => Doc | undefined,
  ) {
    this.readQ = db.query("SELECT last_run FROM tasks WHERE id = ?");
    this.writeQ = db.query("UPDATE tasks SET last_run = ? WHERE id = ?");
    this.insertRunQ = db.query("INSERT INTO runs (task_id, run_id, started_at, doc) VALUES (?, ?, ?, ?)");
    batch.beforeCommit(() => this.flush());
    batch.onRollback(() => {
      this.pending.clear();
      this.known.clear();
    });
  }

  /** Takes a run that ends as its task's current run; false: it belongs in the runs table. */
  offer(run: Run): boolean {
    const t = this.task(run.task_id);
    if (!t || t.run_id !== run.run_id || t.start_time !== run.started_at) return false;
    const before = this.pending.get(run.task_id);
    if (before && before.run_id !== run.run_id) this.toTable(before);
    this.pending.set(run.task_id, run);
    return true;
  }

  /** The last_run column for a write of the task as `after`; the task as stored is read only when it has a last run. */
  columnFor(after: Doc): string | null {
    let column = this.read(after.id);
    const ended = this.pending.get(after.id);
    this.pending.delete(after.id);
    const before = column ? this.task(after.id) : undefined;
    if (ended) {
      if (column && before) this.toTable(this.unpack(column, before));
      column = packLastRun(ended, after);
    } else if (column && before && runFieldsDiffer(before, after)) {
      column = packLastRun(this.unpack(column, before), after);
    }
    this.remember(after.id, column);
    return column;
  }

  /** The task's last run (pending or in its row), if it has this run id. */
  get(taskId: string, runId: string): Run | undefined {
    const r = this.last(taskId);
    return r?.run_id === runId ? r : undefined;
  }

  /** Replaces the task's last run when it is this one; false when it is not. */
  update(run: Run): boolean {
    const p = this.pending.get(run.task_id);
    if (p) {
      if (p.run_id !== run.run_id) return false;
      this.pending.set(run.task_id, run);
      return true;
    }
    const t = this.task(run.task_id);
    if (!t || this.get(run.task_id, run.run_id) === undefined) return false;
    this.write(run.task_id, packLastRun(run, t));
    return true;
  }

  /** The task's last run, pending or kept in its row. */
  last(taskId: string): Run | undefined {
    return this.pending.get(taskId) ?? this.inRow(taskId);
  }

  /** The runs not in the runs table, newest first: one ended in this transaction, and the one in the row. */
  extras(taskId: string): Run[] {
    const p = this.pending.get(taskId);
    const r = this.inRow(taskId);
    const out = [p, r].filter((x): x is Run => x !== undefined);
    return out.sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : 0));
  }

  private inRow(taskId: string): Run | undefined {
    const column = this.read(taskId);
    const t = column ? this.task(taskId) : undefined;
    return column && t ? this.unpack(column, t) : undefined;
  }

  forget(taskId: string): void {
    const p = this.pending.get(taskId);
    if (p) this.toTable(p); // the task is gone: its run stays in the history, as runs of deleted tasks do
    this.pending.delete(taskId);
    this.known.delete(taskId);
  }

  private flush(): void {
    for (const [id, run] of this.pending) {
      this.pending.delete(id);
      const t = this.task(id);
      if (!t) {
        this.toTable(run);
        continue;
      }
      const column = this.read(id);
      if (column) this.toTable(this.unpack(column, t));
      this.write(id, packLastRun(run, t));
    }
  }

  private unpack(column: string, t: Doc): Run {
    return checkDoc(Run, unpackLastRun(column, t), `last run of task ${t.id}`);
  }

  private toTable(run: Run): void {
    this.insertRunQ.run(run.task_id, run.run_id, run.started_at, packRun(run));
  }

  private read(id: string): string | null {
    const k = this.known.get(id);
    if (k !== undefined) return k;
    const column = this.readQ.get(id)?.last_run ?? null;
    this.remember(id, column);
    return column;
  }

  private write(id: string, column: string): void {
    this.writeQ.run(column, id);
    this.remember(id, column);
  }

  private remember(id: string, column: string | null): void {
    this.known.set(id, column);
  }

  /** Lets go of the columns it remembers (serve quiet after a burst): they are read again when needed. */
  release(): void {
    this.known.clear();
  }

  /** A task written for the first time has no last run. */
  created(id: string): void {
    this.remember(id, null);
  }
}
