import type { Database } from "bun:sqlite";
import { renameSync } from "node:fs";
import {
  keepNewest,
  MIGRATION_SNAPSHOTS_KEPT,
  newSnapshotFile,
  type SchemaReport,
  snapshotDir,
  statusOf,
} from "../schema.ts";

// Versioned schema changes, applied in order on open and recorded in schema_migrations. A migration is never
// edited once released: a change is a new entry at the end.

export const MIGRATIONS = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY,
     state INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     doc TEXT NOT NULL,
     file TEXT
   )`,
  `CREATE INDEX tasks_created ON tasks(created_at DESC, id DESC)`,
  `CREATE INDEX tasks_state ON tasks(state)`,
  `CREATE TABLE proplets (id TEXT PRIMARY KEY, doc TEXT NOT NULL)`,
  `ALTER TABLE tasks ADD COLUMN job_id TEXT`,
  `ALTER TABLE tasks ADD COLUMN workflow_id TEXT`,
  `ALTER TABLE tasks ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0`,
  `UPDATE tasks SET job_id = json_extract(doc, '$.job_id'), workflow_id = json_extract(doc, '$.workflow_id'),
     scheduled = coalesce(json_extract(doc, '$.schedule'), '') != ''`,
  `CREATE INDEX tasks_job ON tasks(job_id) WHERE job_id IS NOT NULL`,
  `CREATE INDEX tasks_workflow ON tasks(workflow_id) WHERE workflow_id IS NOT NULL`,
  `CREATE INDEX tasks_scheduled ON tasks(scheduled) WHERE scheduled = 1`,
  // Runs are found through their task: no index on the random run id, which would cost a B-tree insert each.
  `CREATE TABLE runs (task_id TEXT NOT NULL, run_id TEXT NOT NULL, started_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE INDEX runs_task ON runs(task_id, started_at DESC)`,
  // The state index changed on every task update and served only start-up scans.
  `DROP INDEX tasks_state`,
  `CREATE TABLE jobs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE TABLE metrics (kind TEXT NOT NULL, owner TEXT NOT NULL, at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE INDEX metrics_owner ON metrics(kind, owner, at DESC)`,
  `CREATE TABLE tokens (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  `CREATE TABLE entities (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, doc TEXT NOT NULL)`,
  // Metadata pairs as text, ordered as listings are: a filtered listing reads the matching rows only, instead of
  // parsing every task's document (92 ms for 100,000 tasks before, measured with scripts/bench/storage.ts).
  `CREATE TABLE task_meta (key TEXT NOT NULL, value TEXT NOT NULL, created_at TEXT NOT NULL, task_id TEXT NOT NULL,
     PRIMARY KEY (key, value, created_at, task_id)) WITHOUT ROWID`,
  `CREATE INDEX task_meta_task ON task_meta(task_id)`,
  `INSERT INTO task_meta (key, value, created_at, task_id)
     SELECT j.key, CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'object' THEN j.value
       WHEN 'array' THEN j.value ELSE CAST(j.value AS TEXT) END, t.created_at, t.id
     FROM tasks t, json_each(t.doc, '$.metadata') j WHERE j.type != 'null'`,
  // Federated learning's documents (experiments, models, datasets, pending updates).
  `CREATE TABLE fl_docs (kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, id))`,
  // Module bytes once per content, counted by the tasks that carry them (sqlite/modules.ts).
  `CREATE TABLE modules (sha TEXT PRIMARY KEY, data TEXT NOT NULL, refs INTEGER NOT NULL)`,
  // New tasks go to the index's high end, where SQLite fills pages to the brim; in a descending index they went to
  // its low end, which splits pages in half (6.8 MiB instead of 3.4 for 50,000 tasks). Walked backwards, the
  // ascending index gives the newest-first listing as fast.
  `DROP INDEX tasks_created`,
  `CREATE INDEX tasks_created_asc ON tasks(created_at, id)`,
  // A task's last ended run, kept in its row as what differs from the task (sqlite/last-run.ts).
  `ALTER TABLE tasks ADD COLUMN last_run TEXT`,
  // `GET /tasks?state=…` (sqlite/find.ts): the tasks in a state, newest first, without reading the others.
  `CREATE INDEX tasks_state_created ON tasks(state, created_at, id)`,
  // FL round tasks, hidden from the default listing: counted on this index (sqlite/find.ts uses its expression).
  `CREATE INDEX tasks_round ON tasks(substr(json_extract(doc, '$.name'), 1, 9))`,
  // Only the rounds in it: every task's entry cost a page of flash at its creation, for a count of the few rounds
  // (scripts/bench/wear.ts). The count names the index's condition (sqlite/find.ts), so it still reads only this.
  `DROP INDEX tasks_round`,
  `CREATE INDEX tasks_rounds ON tasks(state, created_at) WHERE substr(json_extract(doc, '$.name'), 1, 9) = 'fl-round-'`,
  // Every state but Completed, where nearly every task ends: a task's end wrote the Completed entry's page too, one
  // page of flash per task, and the entries were a tenth of the database. Completed ones are counted as all less the
  // others, and listed newest first along tasks_created_asc, where they are nearly all the entries (sqlite/find.ts).
  // From this version on, a task's times are also kept as milliseconds after its creation (sqlite/compact.ts): a
  // binary from before cannot read them and is refused by the version.
  `DROP INDEX tasks_state_created`,
  `CREATE INDEX tasks_state_open ON tasks(state, created_at, id) WHERE state != 3`,
];

/** The version a database records (0 for a new one); it creates nothing. */
export function recorded(db: Database): number {
  const table = db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!table) return 0;
  return db.query<{ v: number | null }, []>("SELECT max(version) AS v FROM schema_migrations").get()?.v ?? 0;
}

/**
 * Brings the database to the newest schema. A newer one than this binary knows is refused before anything is read
 * or written (SchemaTooNew). An existing database that needs migrations is first copied (VACUUM INTO: one
 * consistent file) into `<dataDir>/snapshots`, the newest MIGRATION_SNAPSHOTS_KEPT kept.
 */
export function migrate(db: Database, where = "the SQLite database", dataDir?: string): SchemaReport {
  const done = statusOf(where, recorded(db), MIGRATIONS).current;
  let snapshot: string | undefined;
  if (done > 0 && done < MIGRATIONS.length && dataDir) {
    const dir = snapshotDir(dataDir);
    snapshot = newSnapshotFile(dir, "pre-migrate-", `-sqlite-v${done}.db`);
    // Whole or absent under its name: killed half-way, VACUUM INTO left a file of the name with no tables in it,
    // which the next migrate kept beside the good ones (and counted against the three kept).
    db.run("VACUUM INTO ?", [`${snapshot}.tmp`]);
    renameSync(`${snapshot}.tmp`, snapshot);
    keepNewest(dir, "pre-migrate-", MIGRATION_SNAPSHOTS_KEPT);
  }
  db.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)");
  db.transaction(() => {
    for (let i = done; i < MIGRATIONS.length; i++) {
      db.run(MIGRATIONS[i]!);
      db.run("INSERT INTO schema_migrations (version) VALUES (?)", [i + 1]);
    }
  })();
  return { from: done, to: MIGRATIONS.length, ...(snapshot ? { snapshot } : {}) };
}
