import type { Database } from "bun:sqlite";
import { statSync } from "node:fs";
import { Checkpointer } from "./checkpointer.ts";

/** Quiet time after the last commit before a grown WAL is checkpointed and truncated. */
const IDLE_CHECKPOINT_MS = 2000;
/**
 * The WAL's size from which a quiet moment folds it into the database. Below it the WAL is left to grow: a
 * checkpoint after every few idle commits wrote each page twice (WAL, then database) and fsynced both, which was
 * most of what an idle serve wrote to its flash (scripts/bench/wear.ts); checkpoints instead come with size, and
 * a page changed many times between two of them is written to the database once.
 */
const IDLE_CHECKPOINT_BYTES = 4 << 20;
/**
 * WAL bytes after which a busy writer has it checkpointed. At SQLite's default (1,000 pages) a busy manager paid one
 * every few hundred commits: one every 64 MiB instead, whatever the page size. The WAL file then keeps its largest
 * size while busy; it is cut back once the store is quiet. (journal_size_limit, which cuts it after every
 * checkpoint, cost 7 % of dispatch throughput: the file regrows.)
 */
export const BUSY_CHECKPOINT_BYTES = 64 << 20;
/** How often a busy writer looks at the WAL's size: a stat per commit would be a syscall per event-loop turn. */
const SIZE_CHECK_MS = 250;

/** Group commit: one open transaction per event-loop turn, and promises for "committed". */
export class Batch {
  private open = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Told when a commit failed and was rolled back: what was cached from the lost writes is wrong. */
  private rollbackListeners: (() => void)[] = [];
  private idle?: Timer;
  private lastCommit = 0;
  private lastSizeCheck = 0;
  /**
   * The checkpoint thread folded a busy WAL while writes went on: what they added since is folded here, after the
   * next commit, so that the write after it starts the WAL over (SQLite restarts it only once every frame is in the
   * database; a thread that never quite catches up would let it grow without end).
   */
  private finishCheckpoint = false;
  /** Checkpoints run on a thread of their own (checkpointer.ts); none for an in-memory database. */
  private checkpoints?: Checkpointer;
  /** The WAL file's path (none for an in-memory database: nothing to fold). */
  private walPath?: string;
  constructor(
    private db: Database,
    /** The database file's path, or none for an in-memory database. */
    path?: string,
  ) {
    if (!path) return;
    this.walPath = `${path}-wal`;
    this.checkpoints = new Checkpointer(path);
    // SQLite's own automatic checkpoint would run on this thread, in the commit that passed its size.
    db.run("PRAGMA wal_autocheckpoint = 0");
  }

  /**
   * While busy, a WAL past BUSY_CHECKPOINT_BYTES is folded into the database (a writer then starts the WAL over
   * from its beginning). After a burst of writes, once the database has been quiet for a moment, a WAL grown past
   * IDLE_CHECKPOINT_BYTES is folded and cut back to nothing: a WAL file keeps its largest size otherwise.
   */
  private checkpointLater(): void {
    const checkpoints = this.checkpoints;
    if (!checkpoints) return;
    if (this.lastCommit - this.lastSizeCheck >= SIZE_CHECK_MS) {
      this.lastSizeCheck = this.lastCommit;
      if (!checkpoints.busy && walBytes(this.walPath) >= BUSY_CHECKPOINT_BYTES)
        void checkpoints.run(false).then((r) => {
          this.finishCheckpoint = r.ok;
        });
    }
    if (this.idle) return; // one timer, which looks again when it fires: not a new one for every commit
    const check = () => {
      const quiet = performance.now() - this.lastCommit;
      if (quiet < IDLE_CHECKPOINT_MS) {
        this.idle = setTimeout(check, IDLE_CHECKPOINT_MS - quiet);
        this.idle.unref();
        return;
      }
      this.idle = undefined;
      // A reader or writer in the way leaves the WAL uncut: the next quiet moment tries again.
      if (walBytes(this.walPath) >= IDLE_CHECKPOINT_BYTES) void checkpoints.run(true);
    };
    this.idle = setTimeout(check, IDLE_CHECKPOINT_MS);
    this.idle.unref();
  }

  /** Commits what is open and stops checkpointing; the database is closed after this. */
  close(): void {
    this.commit();
    clearTimeout(this.idle);
    this.checkpoints?.close();
  }

  onRollback(fn: () => void): void {
    this.rollbackListeners.push(fn);
  }

  /** Writes that wait for the end of the transaction (a run ended, written with its task's next write). */
  private beforeCommitListeners: (() => void)[] = [];
  beforeCommit(fn: () => void): void {
    this.beforeCommitListeners.push(fn);
  }

  /** Called before every write. */
  begin(): void {
    if (this.open) return;
    this.db.run("BEGIN");
    this.open = true;
    // (Spacing commits at least 1 ms apart so several turns share one halved throughput: every request awaits
    // its commit, and Bun's shortest timer is a millisecond.)
    setImmediate(() => this.commit());
  }

  commit(): void {
    if (!this.open) return;
    const waiters = this.waiters;
    this.waiters = [];
    this.open = false;
    this.lastCommit = performance.now();
    try {
      for (const fn of this.beforeCommitListeners) fn();
      this.db.run("COMMIT");
    } catch (e) {
      if (this.db.inTransaction) this.db.run("ROLLBACK");
      for (const fn of this.rollbackListeners) fn();
      for (const w of waiters) w.reject(e);
      return;
    }
    for (const w of waiters) w.resolve();
    if (this.finishCheckpoint) {
      this.finishCheckpoint = false;
      try {
        this.db.run("PRAGMA wal_checkpoint(PASSIVE)");
      } catch {} // the next busy checkpoint tries again
    }
    this.checkpointLater();
  }

  durable(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

function walBytes(path: string | undefined): number {
  if (!path) return 0;
  try {
    return statSync(path).size;
  } catch {
    return 0; // none yet
  }
}
