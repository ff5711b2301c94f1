import { mkdirSync } from "node:fs";
import { open, type RootDatabase } from "lmdb";
import type { Storage } from "../repository.ts";
import { statusOf } from "../schema.ts";
import { KvEntities, KvFl, KvJobs, KvMetrics, KvProplets, KvRuns, KvTokens } from "./others.ts";
import { KvTasks } from "./tasks.ts";

// An embedded key-value store for high-write edge nodes (`serve --storage kv`): LMDB through the `lmdb` package,
// in `<data-dir>/kv`. Every write is its own small transaction, committed before the call returns; with noSync the
// commit is in the OS's page cache at once, so a kill -9 loses nothing acknowledged (as SQLite's
// synchronous=NORMAL: a power cut may lose the last commits). Reads are synchronous, as the contract needs.

/**
 * The kv layout's versions (key ["schema"]). 1: the layout of src/storage/kv/*.ts as first released (a store from
 * before the key existed is that layout). A change of layout is a new entry, applied on open after a copy of the
 * store into `<data-dir>/snapshots` (none yet).
 */
export const KV_SCHEMA = ["key-value layout of tasks, runs, jobs, proplets, metrics, tokens, entities, fl documents"];

/** The version a kv store records; a store from before the key is version 1, a new one 0. */
export function kvRecorded(db: RootDatabase): number {
  const v = db.get(["schema"]) as number | undefined;
  if (v !== undefined) return v;
  for (const _ of db.getKeys({ limit: 1 })) return 1;
  return 0;
}

export function openKv(dir: string, _dataDir?: string): Storage {
  mkdirSync(dir, { recursive: true });
  // Keys are arrays (ordered element by element), values msgpack; lmdb grows the map as the data grows.
  const db = open({ path: dir, noSync: true, encoding: "msgpack" });
  let from: number;
  try {
    from = statusOf(dir, kvRecorded(db), KV_SCHEMA).current;
  } catch (e) {
    void db.close();
    throw e;
  }
  if (from !== KV_SCHEMA.length) db.putSync(["schema"], KV_SCHEMA.length);
  return {
    kind: "kv",
    schema: { from, to: KV_SCHEMA.length },
    tasks: new KvTasks(db),
    proplets: new KvProplets(db),
    runs: new KvRuns(db),
    jobs: new KvJobs(db),
    metrics: new KvMetrics(db),
    tokens: new KvTokens(db),
    entities: new KvEntities(db),
    fl: new KvFl(db),
    // Commits are synchronous; lmdb still tracks the last one, and closing before it settled hangs (measured).
    durable: () => db.committed.then(() => {}),
    // A key of its own ("probe" is no index's prefix), written as every write is.
    probe: async () => {
      await db.put(["probe"], Date.now());
    },
    close: async () => {
      await db.committed;
      await db.close();
    },
  };
}
