import type { Database } from "bun:sqlite";
import { OwnerMetrics } from "../order.ts";
import type { ListResult, MetricsRepository } from "../repository.ts";
import { METRICS_RETENTION } from "../retention.ts";
import type { Batch } from "./batch.ts";

export class SqliteMetrics extends OwnerMetrics implements MetricsRepository {
  constructor(
    private db: Database,
    private batch: Batch,
  ) {
    super();
  }
  protected add(kind: "proplet" | "task", owner: string, at: string, sample: unknown): void {
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
  protected list(kind: "proplet" | "task", owner: string, offset: number, limit: number): ListResult<unknown> {
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
}
