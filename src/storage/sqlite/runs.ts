import type { Database } from "bun:sqlite";
import { Run } from "../../core/run.ts";
import type { ListResult, RunRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { readDoc } from "./doc.ts";

export class SqliteRuns implements RunRepository {
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
  get(taskId: string, runId: string): Run | undefined {
    const r = this.db
      .query<{ doc: string }, [string, string]>("SELECT doc FROM runs WHERE task_id = ? AND run_id = ?")
      .get(taskId, runId);
    return r ? readDoc(Run, r.doc, `run ${runId}`) : undefined;
  }
  update(run: Run): boolean {
    this.batch.begin();
    // By task first: the (task_id, started_at) index finds the row without a scan of every run.
    const r = this.db
      .query("UPDATE runs SET doc = ? WHERE task_id = ? AND run_id = ?")
      .run(JSON.stringify(run), run.task_id, run.run_id);
    return r.changes > 0;
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
      .map((r) => readDoc(Run, r.doc, `run of task ${taskId}`));
    return { total, items };
  }
}
