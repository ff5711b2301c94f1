import type { Database } from "bun:sqlite";
import { statSync } from "node:fs";

/** Quiet time after the last commit before a grown WAL is checkpointed and truncated. */
const IDLE_CHECKPOINT_MS = 2000;
/**
 * The WAL's size from which a quiet moment folds it into the database. Below it the WAL is left to grow: a
 * checkpoint after every few idle commits wrote each page twice (WAL, then database) and fsynced both, which was
 * most of what an idle serve wrote to its flash (scripts/bench/wear.ts); checkpoints instead come with size, and
 * a page changed many times between two of them is written to the database once.
 */
const IDLE_CHECKPOINT_BYTES = 4 << 20;

/** Group commit: one open transaction per event-loop turn, and promises for "committed". */
export class Batch {
  private open = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Told when a commit failed and was rolled back: what was cached from the lost writes is wrong. */
  private rollbackListeners: (() => void)[] = [];
  private idle?: Timer;
  private lastCommit = 0;
  constructor(
    private db: Database,
    /** The WAL file's path (none for an in-memory database: nothing to fold). */
    private walPath?: string,
  ) {}

  /**
   * After a burst of writes, once the database has been quiet for a moment, a WAL grown past
   * IDLE_CHECKPOINT_BYTES is folded into the database and cut back to nothing: checkpoints run only every 16,000 pages (64 MiB) while busy, and a WAL file keeps
   * its largest size otherwise.
   */
  private checkpointWhenIdle(): void {
    if (this.idle) return; // one timer, which looks again when it fires: not a new one for every commit
    const check = () => {
      const quiet = performance.now() - this.lastCommit;
      if (quiet < IDLE_CHECKPOINT_MS) {
        this.idle = setTimeout(check, IDLE_CHECKPOINT_MS - quiet);
        this.idle.unref();
        return;
      }
      this.idle = undefined;
      if (walBytes(this.walPath) < IDLE_CHECKPOINT_BYTES) return;
      try {
        this.db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch {} // a reader in the way: the next quiet moment tries again
    };
    this.idle = setTimeout(check, IDLE_CHECKPOINT_MS);
    this.idle.unref();
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
    this.checkpointWhenIdle();
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
