import { existsSync } from "node:fs";
import { join } from "node:path";
import { withBufferedMetrics } from "./metrics-buffer.ts";
import type { Fence } from "./postgres/journal.ts";
import { redact } from "./postgres/url.ts";
import type { Storage, StorageKind } from "./repository.ts";
import { SchemaTooNew } from "./schema.ts";
import { openSqlite } from "./sqlite/index.ts";

export interface StorageOptions {
  /** sqlite keeps `propeller.db` here. */
  dataDir: string;
  /** For postgres. */
  postgresUrl?: string;
  /** For postgres shared by several managers: checks the lease in every write transaction. */
  fence?: Fence;
  /** This program's version, named when the store's schema is newer than it knows. */
  program?: string;
}

/** The backends `serve --storage` offers, with what each one is for. */
export const STORAGE_HELP: Record<StorageKind, string> = {
  sqlite: "a file in --data-dir (default)",
  kv: "an embedded key-value store (LMDB) in --data-dir, for high-write edge nodes",
  memory: "keeps nothing across a restart: for tests and throwaway runs",
  postgres: "a PostgreSQL database (--postgres-url), which two managers of one site can share",
};

/** Where a backend keeps its data, for the files and for the log (a database URL without its password). */
export function storageLocation(kind: StorageKind, o: StorageOptions): string {
  switch (kind) {
    case "sqlite":
      return join(o.dataDir, "propeller.db");
    case "kv":
      return join(o.dataDir, "kv");
    case "memory":
      return "memory (nothing is kept across a restart)";
    case "postgres":
      return `postgres ${redact(o.postgresUrl ?? "")}`;
  }
}

export async function openStorage(kind: StorageKind, o: StorageOptions): Promise<Storage> {
  try {
    return await open(kind, o);
  } catch (e) {
    if (e instanceof SchemaTooNew && o.program) throw new SchemaTooNew(e.where, e.stored, e.known, o.program);
    throw e;
  }
}

/**
 * A data dir holds one site's store. Opened as the other kind, a new empty store was made beside it, and serve,
 * finding no admin there, wrote a new admin token over the old one's file: the site looked empty and its CLI was
 * refused once the right kind was started again. Refused instead, naming the kind the dir holds.
 */
function refuseOtherKind(kind: "sqlite" | "kv", o: StorageOptions): void {
  const other = kind === "sqlite" ? "kv" : "sqlite";
  if (existsSync(storageLocation(kind, o)) || !existsSync(storageLocation(other, o))) return;
  throw new Error(
    `${o.dataDir} holds a ${other} store (${storageLocation(other, o)}), not a ${kind} one: start with --storage ${other} (or give another --data-dir for a new ${kind} store)`,
  );
}

async function open(kind: StorageKind, o: StorageOptions): Promise<Storage> {
  if (kind === "sqlite" || kind === "kv") refuseOtherKind(kind, o);
  switch (kind) {
    // The two on the device's own disk hold metrics samples in memory and write them in batches (flash wear).
    case "sqlite":
      return withBufferedMetrics(openSqlite(storageLocation(kind, o), o.dataDir));
    case "kv": {
      // Loaded only when chosen: LMDB's native addon needs libstdc++, which a minimal device may not have.
      const { openKv } = await import("./kv/index.ts");
      return withBufferedMetrics(openKv(storageLocation(kind, o), o.dataDir));
    }
    // The other backends are loaded only when chosen: serve starts sooner and smaller on the default one.
    case "memory":
      return (await import("./memory/index.ts")).openMemory();
    case "postgres":
      if (!o.postgresUrl) throw new Error("--storage postgres needs --postgres-url (env PROPELLER_DB_URL)");
      return (await import("./postgres/index.ts")).openPostgres(o.postgresUrl, o.fence);
  }
}
