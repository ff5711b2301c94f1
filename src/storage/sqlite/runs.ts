import type { Database } from "bun:sqlite";
import { Run } from "../../core/run.ts";
import type { ListResult, RunRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { packRun, type RunColumns, unpackRun } from "./compact.ts";
import { checkDoc } from "./doc.ts";

type RunRow = RunColumns & { doc: string };
const readRun = (r: RunRow): Run => checkDoc(Run, unpackRun(r.doc, r), `run ${r.run_id} of task ${r.task_id}`);

export class SqliteRuns implements RunRepository {
  constructor(
    private db: Database,
    private batch: Batch,
  ) {}
  create(run: Run): void {
    this.batch.begin();
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
    return r ? readRun(r) : undefined;
  }
  update(run: Run): boolean {
    this.batch.begin();
    // By task first: the (task_id, started_at) index finds the row without a scan of every run.
    const r = this.db
      .query("UPDATE runs SET doc = ?, started_at = ? WHERE task_id = ? AND run_id = ?")
      .run(packRun(run), run.started_at, run.task_id, run.run_id);
    return r.changes > 0;
  }
  listByTask(taskId: string, offset: number, limit: number): ListResult<Run> {
    const total = this.db
      .query<{ n: number }, [string]>("SELECT count(*) AS n FROM runs WHERE task_id = ?")
      .get(taskId)!.n;
    const items = this.db
      .query<RunRow, [string, number, number]>(
        `SELECT task_id, run_id, started_at, doc FROM runs WHERE task_id = ?
         ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?`,
      )
      .all(taskId, limit, offset)
      .map(readRun);
    return { total, items };
  }
}
