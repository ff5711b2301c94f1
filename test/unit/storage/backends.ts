import { join } from "node:path";
import { openKv } from "../../../src/storage/kv/index.ts";
import { openMemory } from "../../../src/storage/memory/index.ts";
import { openPostgres } from "../../../src/storage/postgres/index.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { tempDir } from "../../helpers.ts";
import { type Postgres, startPostgres } from "../../postgres.ts";

// The backends the contract suite runs against, each as a way to open a fresh store and, for the durable ones,
// to open the same store again as a restarted manager would.

export interface Backend {
  name: string;
  /** A fresh, empty store. */
  fresh(): Promise<Storage>;
  /** A second store on what `fresh` made last (a restart); absent for a backend that keeps nothing. */
  reopen?(): Promise<Storage>;
  /** Stops what the backend needed (a server). */
  done?(): Promise<void>;
}

export function sqliteBackend(): Backend {
  let path = "";
  return {
    name: "sqlite",
    fresh: async () => {
      path = join(tempDir(), "contract.db");
      return openSqlite(path);
    },
    reopen: async () => openSqlite(path),
  };
}

export function kvBackend(): Backend {
  let dir = "";
  return {
    name: "kv",
    fresh: async () => {
      dir = join(tempDir(), "kv");
      return openKv(dir);
    },
    reopen: async () => openKv(dir),
  };
}

export function memoryBackend(): Backend {
  return { name: "memory", fresh: async () => openMemory() };
}

/** PostgreSQL: one throwaway cluster for the suite, a new database for each fresh store. */
export function postgresBackend(): Backend {
  let pg: Postgres | undefined;
  let url = "";
  let n = 0;
  return {
    name: "postgres",
    fresh: async () => {
      pg ??= await startPostgres();
      url = await pg.database(`contract_${++n}`);
      return openPostgres(url);
    },
    reopen: async () => openPostgres(url),
    done: async () => pg?.stop(),
  };
}
