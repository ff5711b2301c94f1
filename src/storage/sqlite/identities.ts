import type { Database } from "bun:sqlite";
import { Entity, Token } from "../../core/identity.ts";
import type { EntityRepository, TokenRepository } from "../repository.ts";
import type { Batch } from "./batch.ts";
import { readDoc } from "./doc.ts";

// Tokens and entities: few rows, read into memory by the manager at start; a document each.

class Docs<T extends { id: string; created_at: string }> {
  constructor(
    private db: Database,
    private batch: Batch,
    private table: "tokens" | "entities",
    private parse: (text: string, where: string) => T,
  ) {}

  create(v: T): void {
    this.batch.begin();
    this.db
      .query(`INSERT INTO ${this.table} (id, created_at, doc) VALUES (?, ?, ?)`)
      .run(v.id, v.created_at, JSON.stringify(v));
  }
  update(v: T): void {
    this.batch.begin();
    this.db.query(`UPDATE ${this.table} SET doc = ? WHERE id = ?`).run(JSON.stringify(v), v.id);
  }
  get(id: string): T | undefined {
    const row = this.db.query<{ doc: string }, [string]>(`SELECT doc FROM ${this.table} WHERE id = ?`).get(id);
    return row ? this.parse(row.doc, `${this.table} ${id}`) : undefined;
  }
  all(): T[] {
    return this.db
      .query<{ doc: string }, []>(`SELECT doc FROM ${this.table} ORDER BY created_at, id`)
      .all()
      .map((r) => this.parse(r.doc, this.table));
  }
}

export class SqliteTokens extends Docs<Token> implements TokenRepository {
  constructor(db: Database, batch: Batch) {
    super(db, batch, "tokens", (text, where) => readDoc(Token, text, where));
  }
}

export class SqliteEntities extends Docs<Entity> implements EntityRepository {
  constructor(db: Database, batch: Batch) {
    super(db, batch, "entities", (text, where) => readDoc(Entity, text, where));
  }
}
