import type { Database } from "bun:sqlite";
import type { ListResult, MetricsRepository } from "../repository.ts";
import { METRICS_RETENTION } from "../retention.ts";
import type { Batch } from "./batch.ts";

export class SqliteMetrics implements MetricsRepository {
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
      .map((r): unknown => JSON.parse(r.doc));
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
