import type { SQL } from "bun";
import { type SchemaReport, type SchemaStatus, statusOf } from "../schema.ts";

// Versioned schema changes for PostgreSQL, applied in order on open and recorded in schema_migrations, under an
// advisory lock so two managers starting together do not both apply them. Never edit a released entry: add one.
// Documents are JSON text, as in SQLite: PostgreSQL is the durable copy here, not what queries run on.

export const MIGRATIONS = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     state INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     doc TEXT NOT NULL,
     file TEXT,
     job_id TEXT,
     workflow_id TEXT,
     scheduled BOOLEAN NOT NULL DEFAULT false
   )`,
  `CREATE INDEX tasks_created ON tasks (created_at, id)`,
  `CREATE TABLE runs (seq BIGSERIAL PRIMARY KEY, task_id TEXT NOT NULL, run_id TEXT NOT NULL,
     started_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE INDEX runs_task ON runs (task_id)`,
  `CREATE TABLE jobs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE TABLE proplets (id TEXT PRIMARY KEY, doc TEXT NOT NULL)`,
  `CREATE TABLE metrics (seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, at TEXT NOT NULL,
     doc TEXT NOT NULL)`,
  `CREATE INDEX metrics_owner ON metrics (kind, owner, at DESC)`,
  `CREATE TABLE tokens (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE TABLE entities (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  // One row per site: who may write (the active manager), fenced by an epoch that grows with every hand-over.
  `CREATE TABLE lease (name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL,
     expires_at TIMESTAMPTZ NOT NULL, url TEXT)`,
  // Federated learning's documents (experiments, models, datasets, pending updates).
  `CREATE TABLE fl_docs (kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, id))`,
];

const LOCK_KEY = 0x70726f70; // "prop"

/** The version the database records (0: none yet); it creates nothing. */
export async function pgStatus(sql: SQL, where: string): Promise<SchemaStatus> {
  const [t] = await sql`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`;
  if (!t.present) return statusOf(where, 0, MIGRATIONS);
  const [row] = await sql`SELECT coalesce(max(version), 0) AS v FROM schema_migrations`;
  return statusOf(where, Number(row.v), MIGRATIONS);
}

/**
 * Brings the database to the newest schema, all pending migrations in one transaction (all or none). A newer
 * schema than this binary knows is refused (SchemaTooNew) before any row is read. No snapshot is taken here: the
 * database is the operator's (pg_dump, or `propeller backup` with the binary that wrote it, before upgrading).
 */
export async function migrate(sql: SQL, where = "the PostgreSQL database"): Promise<SchemaReport> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${LOCK_KEY})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`;
    const [row] = await tx`SELECT coalesce(max(version), 0) AS v FROM schema_migrations`;
    const done = statusOf(where, Number(row.v), MIGRATIONS).current;
    for (let i = done; i < MIGRATIONS.length; i++) {
      await tx.unsafe(MIGRATIONS[i]!);
      await tx`INSERT INTO schema_migrations (version) VALUES (${i + 1})`;
    }
    return { from: done, to: MIGRATIONS.length };
  });
}
