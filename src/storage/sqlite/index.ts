import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Storage } from "../repository.ts";
import type { SchemaReport } from "../schema.ts";
import { Batch } from "./batch.ts";
import { SqliteFl } from "./fl.ts";
import { SqliteEntities, SqliteTokens } from "./identities.ts";
import { SqliteJobs } from "./jobs.ts";
import { SqliteMetrics } from "./metrics.ts";
import { migrate } from "./migrations.ts";
import { SqliteProplets } from "./proplets.ts";
import { SqliteRuns } from "./runs.ts";
import { SqliteTasks } from "./tasks.ts";

// SQLite in WAL mode with synchronous=NORMAL: a committed write survives a kill -9 of the process (the OS keeps
// what was written; WAL is fsynced at checkpoints). Writes are grouped: the first write of an event-loop turn
// opens a transaction that commits on setImmediate, so a burst of requests costs one commit, not one each.
// One file per repository beside this one; a second backend is added the same way, file by file.

/** The page size of a new database. */
const PAGE_SIZE = 1024;

/** `snapshots`: where a migration snapshot goes (the data dir); none for a database that is no site's own. */
export function openSqlite(path: string, snapshots?: string): Storage {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { create: true, strict: true });
  // A new database gets 1 KiB pages (SQLite's default is 4): every commit writes each page it changed whole to the
  // WAL, and a task's three commits (created, started, ended) change about 9 pages. At 10 tasks/s 4 KiB pages made
  // that 43 KiB of flash per task, 1 KiB pages 13, 9.4 since rows are smaller and the state index leaves Completed
  // tasks out (scripts/bench/wear.ts); rows of ~330 bytes go three to a page (50,000 tasks: 24 MiB). An existing
  // database keeps its page size (only a VACUUM out of WAL mode changes it; `propeller backup`, then `restore` into
  // a new data dir, makes it anew).
  db.run(`PRAGMA page_size = ${PAGE_SIZE}`);
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  // Checkpoints (every 64 MiB of WAL while busy, and when quiet) run on a thread of their own: batch.ts.
  db.run("PRAGMA foreign_keys = ON");
  let schema: SchemaReport;
  try {
    schema = migrate(db, path, snapshots);
  } catch (e) {
    db.close();
    throw e;
  }
  const batch = new Batch(db, path === ":memory:" ? undefined : path);
  const tasks = new SqliteTasks(db, batch);
  return {
    kind: "sqlite",
    schema,
    tasks,
    proplets: new SqliteProplets(db, batch),
    runs: new SqliteRuns(db, batch, tasks.lastRuns),
    jobs: new SqliteJobs(db, batch),
    metrics: new SqliteMetrics(db, batch),
    tokens: new SqliteTokens(db, batch),
    entities: new SqliteEntities(db, batch),
    fl: new SqliteFl(db, batch),
    durable: () => batch.durable(),
    onLostWrites: (fn) => batch.onRollback(fn),
    probe: async () => {
      // A row of its own, in the group commit every write goes through; the table is made by the first probe.
      batch.begin();
      db.run("CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)");
      db.run("INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)", [Date.now()]);
      await batch.durable();
    },
    release: () => {
      tasks.release();
      // SQLite's page cache goes back to the allocator (serve's memory after a burst, src/cli/idle-release.ts).
      db.run("PRAGMA shrink_memory");
    },
    close: () => {
      batch.close();
      db.close();
    },
  };
}
