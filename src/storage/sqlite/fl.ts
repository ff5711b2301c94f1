import type { Database, Statement } from "bun:sqlite";
import type { FlKind, FlRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";

// Federated learning's documents: JSON text by kind and id, written in the manager's group commit.

export class SqliteFl implements FlRepository {
  private putQ: Statement;
  private getQ: Statement<{ doc: string }, [string, string]>;
  private idsQ: Statement<{ id: string }, [string]>;
  private deleteQ: Statement;

  constructor(
    db: Database,
    private batch: Batch,
  ) {
    this.putQ = db.query(
      "INSERT INTO fl_docs (kind, id, doc) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET doc = excluded.doc",
    );
    this.getQ = db.query("SELECT doc FROM fl_docs WHERE kind = ? AND id = ?");
    this.idsQ = db.query("SELECT id FROM fl_docs WHERE kind = ? ORDER BY id");
    this.deleteQ = db.query("DELETE FROM fl_docs WHERE kind = ? AND id = ?");
  }
  put(kind: FlKind, id: string, doc: string): void {
    this.batch.begin();
    this.putQ.run(kind, id, doc);
  }
  get(kind: FlKind, id: string): string | undefined {
    return this.getQ.get(kind, id)?.doc;
  }
  ids(kind: FlKind): string[] {
    return this.idsQ.all(kind).map((r) => r.id);
  }
  delete(kind: FlKind, id: string): boolean {
    this.batch.begin();
    return this.deleteQ.run(kind, id).changes > 0;
  }
}
