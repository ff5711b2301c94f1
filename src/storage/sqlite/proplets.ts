import type { Database, Statement } from "bun:sqlite";
import { Proplet } from "../../core/proplet.ts";
import type { PropletRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { readDoc } from "./doc.ts";

export class SqliteProplets implements PropletRepository {
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
    return row ? readDoc(Proplet, row.doc, `proplet ${id}`) : undefined;
  }
  delete(id: string): boolean {
    this.batch.begin();
    return this.deleteQ.run(id).changes > 0;
  }
  all(): Proplet[] {
    return this.allQ.all().map((r) => readDoc(Proplet, r.doc, "proplet"));
  }
}
