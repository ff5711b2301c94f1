import { Database } from "bun:sqlite";
import { existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { SQL } from "bun";
import { lockDir, lockHolder, restoreUnfinished, UnfinishedRestore } from "../storage/lock.ts";
import { openStorage, STORAGE_HELP, storageLocation } from "../storage/open.ts";
import { pgStatus } from "../storage/postgres/migrations.ts";
import { redact } from "../storage/postgres/url.ts";
import type { Storage, StorageKind } from "../storage/repository.ts";
import { type SchemaStatus, SchemaTooNew, statusOf } from "../storage/schema.ts";
import { MIGRATIONS, recorded } from "../storage/sqlite/migrations.ts";
import { PROGRAM } from "../version.ts";
import { defaultDataDir, env, UsageError } from "./args.ts";

// The store of a stopped serve, for the commands that work on it directly: backup --data-dir, restore, migrate,
// tokens create --data-dir. Each names its store as serve does (--storage, --data-dir, --postgres-url), refuses a
// data dir a running serve holds, and never creates a store by looking for one.

export const storeArgs = {
  "data-dir": {
    type: "string",
    description: "serve's data dir (env PROPELLER_DATA_DIR; default as serve's)",
  },
  storage: {
    type: "string",
    description: "the backend of that store: sqlite (default), kv or postgres (env PROPELLER_STORAGE)",
  },
  "postgres-url": {
    type: "string",
    description: "for --storage postgres: the database URL (env PROPELLER_DB_URL)",
  },
} as const;

export interface StoreChoice {
  kind: Exclude<StorageKind, "memory">;
  dataDir: string;
  postgresUrl?: string;
}

export function storeChoice(args: { "data-dir"?: string; storage?: string; "postgres-url"?: string }): StoreChoice {
  if (args["data-dir"] !== undefined && !args["data-dir"].trim())
    throw new UsageError("--data-dir is empty: give a directory");
  const kind = (args.storage || env("PROPELLER_STORAGE") || "sqlite") as StorageKind;
  if (!(kind in STORAGE_HELP) || kind === "memory")
    throw new UsageError(`--storage must be one of sqlite, kv, postgres, got ${JSON.stringify(kind)}`);
  const postgresUrl = args["postgres-url"] || env("PROPELLER_DB_URL");
  if (kind === "postgres" && !postgresUrl) throw new UsageError("--storage postgres needs --postgres-url");
  const dataDir = args["data-dir"] || env("PROPELLER_DATA_DIR") || defaultDataDir();
  // A file, or a path through one, said as such (it was "no sqlite store at FILE/propeller.db", or ENOTDIR).
  if (kind !== "postgres") {
    const file = fileOnTheWay(dataDir);
    if (file) throw new UsageError(`--data-dir ${dataDir}: ${file} is a file, not a directory: give a directory`);
  }
  return { kind, dataDir, ...(kind === "postgres" ? { postgresUrl } : {}) };
}

/** The first part of `path` that is there and is not a directory, if any. */
function fileOnTheWay(path: string): string | undefined {
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      return statSync(p).isDirectory() ? undefined : p;
    } catch {}
    if (dirname(p) === p) return undefined;
  }
}

/** A data dir a restore was killed in is no store to read or write (storage/lock.ts), whatever the command. */
function refuseUnfinishedRestore(c: StoreChoice): void {
  if (c.kind !== "postgres" && restoreUnfinished(c.dataDir))
    throw new UsageError(new UnfinishedRestore(c.dataDir).message);
}

export function where(c: StoreChoice): string {
  return storageLocation(c.kind, c);
}

/** Whether the files of a sqlite or kv store are there (postgres: the database is asked when opened). */
export function present(c: StoreChoice): boolean {
  if (c.kind === "sqlite") return existsSync(join(c.dataDir, "propeller.db"));
  if (c.kind === "kv") return existsSync(join(c.dataDir, "kv", "data.mdb"));
  return true;
}

/** A manager holding the site's PostgreSQL lease writes there: a change beside it would be overwritten or unseen. */
async function refuseIfLeased(url: string, doing: string): Promise<void> {
  const sql = new SQL(url, { max: 1 });
  let held: { holder: string; url: string | null } | undefined;
  try {
    const [t] = await sql`SELECT to_regclass('lease') IS NOT NULL AS present`;
    if (t.present) [held] = await sql`SELECT holder, url FROM lease WHERE expires_at > now()`;
  } finally {
    await sql.close();
  }
  if (held)
    throw new UsageError(
      `a manager (${held.holder}${held.url ? ` at ${held.url}` : ""}) holds the site's lease: ${doing}`,
    );
}

export function refuseIfHeld(dir: string, doing: string): void {
  const holder = lockHolder(dir);
  if (holder) throw new UsageError(`${dir} is in use by ${holder.what} (PID ${holder.pid}): ${doing}`);
}

/**
 * Runs `fn` on the store with the data dir locked as `what` (a serve starting meanwhile is refused; `locked`: the
 * caller holds the lock); closes it after. A sqlite or kv store that is not there is refused unless `create`.
 */
export async function withStore<T>(
  c: StoreChoice,
  what: string,
  doing: string,
  fn: (s: Storage) => Promise<T>,
  o: { create?: boolean; writes?: boolean; locked?: boolean } = {},
): Promise<T> {
  const create = o.create ?? false;
  // Said first: a restore killed before it made the store's file leaves no store, and this is why.
  if (!o.locked) refuseUnfinishedRestore(c);
  if (!create && !present(c))
    throw new UsageError(
      `no ${c.kind} store at ${where(c)}: refused, nothing was created (is --data-dir or --storage wrong?)`,
    );
  if (c.kind !== "postgres" && !existsSync(c.dataDir)) throw new UsageError(`${c.dataDir} does not exist`);
  if (c.kind !== "postgres" && !o.locked) refuseIfHeld(c.dataDir, doing);
  const lock = c.kind !== "postgres" && !o.locked ? lockDir(c.dataDir, what) : undefined;
  try {
    if (o.writes && c.postgresUrl) await refuseIfLeased(c.postgresUrl, doing);
    const store = await openStorage(c.kind, { ...c, program: PROGRAM });
    try {
      return await fn(store);
    } finally {
      await store.close();
    }
  } finally {
    lock?.release();
  }
}

/** The schema of a store, read only (a newer one is refused naming this program); undefined when there is none. */
export async function schemaStatus(c: StoreChoice): Promise<SchemaStatus | undefined> {
  refuseUnfinishedRestore(c);
  try {
    return await readStatus(c);
  } catch (e) {
    if (e instanceof SchemaTooNew) throw new SchemaTooNew(e.where, e.stored, e.known, PROGRAM);
    throw e;
  }
}

async function readStatus(c: StoreChoice): Promise<SchemaStatus | undefined> {
  if (c.kind === "sqlite") {
    const file = join(c.dataDir, "propeller.db");
    if (!existsSync(file)) return undefined;
    const db = new Database(file, { readonly: true });
    try {
      return statusOf(file, recorded(db), MIGRATIONS);
    } finally {
      db.close();
    }
  }
  if (c.kind === "kv") {
    const dir = join(c.dataDir, "kv");
    if (!existsSync(join(dir, "data.mdb"))) return undefined;
    // Loaded only for kv, as serve loads it: LMDB's addon needs libstdc++.
    const { KV_SCHEMA, kvRecorded } = await import("../storage/kv/index.ts");
    const { open } = await import("lmdb");
    const db = open({ path: dir, readOnly: true, encoding: "msgpack" });
    try {
      return statusOf(dir, kvRecorded(db), KV_SCHEMA);
    } finally {
      await db.close();
    }
  }
  const sql = new SQL(c.postgresUrl!, { max: 1 });
  try {
    return await pgStatus(sql, `PostgreSQL at ${redact(c.postgresUrl!)}`);
  } finally {
    await sql.close();
  }
}
