import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

// What a store says about its own layout: the schema version it records (sqlite and postgres: the highest row of
// schema_migrations; kv: the key ["schema"]), what a binary does with an older one (migrates, after a snapshot in
// the data dir) and with a newer one (refuses, naming both versions, before reading any row).

/** Migration snapshots kept in `<data-dir>/snapshots`, newest first; older ones are removed. */
export const MIGRATION_SNAPSHOTS_KEPT = 3;

export class SchemaTooNew extends Error {
  constructor(
    readonly where: string,
    readonly stored: number,
    readonly known: number,
    program = "this propeller",
  ) {
    super(
      `${where} has schema version ${stored}, newer than schema version ${known} that ${program} knows: ` +
        "run the newer propeller that wrote it, or restore a backup made by this one into an empty store",
    );
  }
}

/** A store's schema as a binary sees it: the version recorded, the newest it knows, and what it would apply. */
export interface SchemaStatus {
  where: string;
  /** 0: no store yet (or an empty one): everything is pending, and applying needs no snapshot. */
  current: number;
  latest: number;
  /** The migrations `current` lacks: version and the first line of each. */
  pending: { version: number; what: string }[];
}

export function statusOf(where: string, current: number, migrations: readonly string[]): SchemaStatus {
  if (current > migrations.length) throw new SchemaTooNew(where, current, migrations.length);
  return {
    where,
    current,
    latest: migrations.length,
    pending: migrations.slice(current).map((m, i) => ({ version: current + i + 1, what: firstLine(m) })),
  };
}

function firstLine(sql: string): string {
  const line = sql.trim().split("\n")[0]!.trim();
  return line.length > 100 ? `${line.slice(0, 97)}...` : line;
}

/** What opening a store did to its schema, for serve's log. */
export interface SchemaReport {
  from: number;
  to: number;
  /** The snapshot taken before migrating, if any. */
  snapshot?: string;
}

/** `<data-dir>/snapshots`, owner only. */
export function snapshotDir(dataDir: string): string {
  const dir = join(dataDir, "snapshots");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** A new empty file for a snapshot, created 0600 before anything is written into it. */
export function newSnapshotFile(dir: string, prefix: string, ext: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  for (let n = 0; ; n++) {
    const file = join(dir, `${prefix}${stamp}${n ? `-${n}` : ""}${ext}`);
    try {
      closeSync(openSync(file, "wx", 0o600));
      chmodSync(file, 0o600); // whatever the umask
      return file;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}

/** Keeps the newest `keep` files of `dir` whose names start with `prefix` (names sort by time); removes the rest. */
export function keepNewest(dir: string, prefix: string, keep: number): string[] {
  const mine = readdirSync(dir).filter((n) => n.startsWith(prefix));
  // A copy killed half-way is no snapshot: its `….tmp` (and SQLite's `….tmp-journal`), and the empty file that held
  // its name, go, and do not count against the ones kept. Its writer held the data dir's lock, as the caller does.
  const tmp = /\.tmp(-journal|-wal|-shm)?$/;
  const partial = (n: string) => tmp.test(n) || statSync(join(dir, n), { throwIfNoEntry: false })?.size === 0;
  const left = mine.filter(partial);
  for (const n of left) rmSync(join(dir, n), { force: true });
  const names = mine.filter((n) => !left.includes(n)).sort();
  const gone = names.slice(0, Math.max(0, names.length - keep));
  for (const n of gone) rmSync(join(dir, n), { recursive: true, force: true });
  return gone;
}
