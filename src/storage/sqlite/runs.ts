import type { Database } from "bun:sqlite";
import { Run } from "../../core/run.ts";
import type { ListResult, RunRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { packRun, type RunColumns, unpackRun } from "./compact.ts";
import { checkDoc } from "./doc.ts";
import type { LastRuns } from "./last-run.ts";

type RunRow = RunColumns & { doc: string };
const readRun = (r: RunRow): Run => checkDoc(Run, unpackRun(r.doc, r), `run ${r.run_id} of task ${r.task_id}`);

export class SqliteRuns implements RunRepository {
  constructor(
    private db: Database,
    private batch: Batch,
    /** Each task's last ended run, kept in the task's row. */
    private last: LastRuns,
  ) {}
  create(run: Run): void {
    this.batch.begin();
    if (this.last.offer(run)) return;
    this.db
      .query("INSERT INTO runs (task_id, run_id, started_at, doc) VALUES (?, ?, ?, ?)")
      .run(run.task_id, run.run_id, run.started_at, packRun(run));
  }
  get(taskId: string, runId: string): Run | undefined {
    const r = this.db
      .query<RunRow, [string, string]>(
        "SELECT task_id, run_id, started_at, doc FROM runs WHERE task_id = ? AND run_id = ?",
      )
      .get(taskId, runId);
    return r ? readRun(r) : this.last.get(taskId, runId);
  }
  update(run: Run): boolean {
    this.batch.begin();
    // By task first: the (task_id, started_at) index finds the row without a scan of every run.
    const r = this.db
      .query("UPDATE runs SET doc = ?, started_at = ? WHERE task_id = ? AND run_id = ?")
      .run(packRun(run), run.started_at, run.task_id, run.run_id);
    return r.changes > 0 || this.last.update(run);
  }
  listByTask(taskId: string, offset: number, limit: number): ListResult<Run> {
    const stored = this.db
      .query<{ n: number }, [string]>("SELECT count(*) AS n FROM runs WHERE task_id = ?")
      .get(taskId)!.n;
    const page = (from: number, n: number) =>
      n <= 0
        ? []
        : this.db
            .query<RunRow, [string, number, number]>(
              `SELECT task_id, run_id, started_at, doc FROM runs WHERE task_id = ?
               ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?`,
            )
            .all(taskId, n, from)
            .map(readRun);
    const extras = this.last.extras(taskId);
    if (!extras.length) return { total: stored, items: page(offset, limit) };
    // The runs kept outside the table take their places in the newest-first order: after every stored run that
    // started later, before those that started at the same time or earlier (they were recorded last).
    const at = extras.map(
      (e, i) =>
        this.db
          .query<{ n: number }, [string, string]>("SELECT count(*) AS n FROM runs WHERE task_id = ? AND started_at > ?")
          .get(taskId, e.started_at)!.n + i,
    );
    const end = Math.min(offset + limit, stored + extras.length);
    const before = at.filter((p) => p < offset).length;
    const inPage = at.filter((p) => p >= offset && p < end).length;
    const rows = page(offset - before, end - offset - inPage);
    const items: Run[] = [];
    for (let j = offset, k = 0; j < end; j++) {
      const e = at.indexOf(j);
      items.push(e >= 0 ? extras[e]! : rows[k++]!);
    }
    return { total: stored + extras.length, items };
  }
}
