// The checkpoint thread (checkpointer.ts): folds the WAL into the database on a connection of its own, so the
// fsyncs and the copying happen off serve's main thread.
import { Database } from "bun:sqlite";

declare const self: Worker;

export type CheckpointRequest = {
  path: string;
  /** Also cut the WAL file back to nothing once all of it is in the database (the quiet-time checkpoint). */
  truncate: boolean;
};

export type CheckpointReply =
  | { ok: true; ms: number; walPages: number; checkpointedPages: number; truncated: boolean }
  | { ok: false; error: string };

/** Passes of PASSIVE at most, each copying what the writers added during the one before. */
const MAX_PASSES = 4;
/** A pass that found fewer new pages than this is the last: 1 MiB at serve's page size. */
const SMALL_PASS_PAGES = 1024;

type Counts = { busy: number; log: number; checkpointed: number };

/** Stepped to its end: a statement left open would hold a read transaction that keeps TRUNCATE waiting. */
const checkpoint = (db: Database, mode: "PASSIVE" | "TRUNCATE") =>
  db.query<Counts, []>(`PRAGMA wal_checkpoint(${mode})`).all()[0]!;

self.onmessage = (e: MessageEvent<CheckpointRequest>) => {
  const t0 = performance.now();
  let db: Database | undefined;
  let reply: CheckpointReply;
  try {
    // A connection per checkpoint: none stays open between them, so the main connection remains the last one and
    // its close still folds and removes the WAL as before.
    db = new Database(e.data.path, { readwrite: true, create: false });
    // PASSIVE copies what it can without holding up the main connection's writers (its readers never block it in WAL
    // mode); only then, with little or nothing left to copy, TRUNCATE takes the write lock for a moment. A writer
    // it keeps waiting waits in its own busy_timeout; if that writer is busy, the next quiet moment tries again.
    // Writes go on meanwhile: passes follow until one finds little new (what is left, the main connection folds in a
    // moment after its next commit, so that its next write starts the WAL over; batch.ts).
    let passive = checkpoint(db, "PASSIVE");
    for (let pass = 1, before = 0; pass < MAX_PASSES && passive.log - before > SMALL_PASS_PAGES; pass++) {
      before = passive.log;
      passive = checkpoint(db, "PASSIVE");
    }
    let truncated = false;
    if (e.data.truncate && passive.busy === 0 && passive.log === passive.checkpointed) {
      db.run("PRAGMA busy_timeout = 50");
      truncated = checkpoint(db, "TRUNCATE").busy === 0;
    }
    reply = {
      ok: true,
      ms: performance.now() - t0,
      walPages: passive.log,
      checkpointedPages: passive.checkpointed,
      truncated,
    };
  } catch (err) {
    reply = { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    db?.close();
  }
  self.postMessage(reply);
};
