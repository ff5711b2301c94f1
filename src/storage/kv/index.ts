import { mkdirSync } from "node:fs";
import { open } from "lmdb";
import { conflict } from "../../core/errors.ts";
import type { Storage } from "../repository.ts";
import { KvEntities, KvFl, KvJobs, KvMetrics, KvProplets, KvRuns, KvTokens } from "./others.ts";
import { KvTasks } from "./tasks.ts";

// An embedded key-value store for high-write edge nodes (`serve --storage kv`): LMDB through the `lmdb` package,
// in `<data-dir>/kv`. Every write is its own small transaction, committed before the call returns; with noSync the
// commit is in the OS's page cache at once, so a kill -9 loses nothing acknowledged (as SQLite's
// synchronous=NORMAL: a power cut may lose the last commits). Reads are synchronous, as the contract needs.

export function openKv(dir: string): Storage {
  mkdirSync(dir, { recursive: true });
  // Keys are arrays (ordered element by element), values msgpack; lmdb grows the map as the data grows.
  const db = open({ path: dir, noSync: true, encoding: "msgpack" });
  return {
    kind: "kv",
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
    backup: () => {
      throw conflict("the kv backend has no online backup: stop serve and copy <data-dir>/kv, or use sqlite");
    },
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
