import type { Database } from "bun:sqlite";

/** Group commit: one open transaction per event-loop turn, and promises for "committed". */
/** Quiet time after the last commit before the WAL is checkpointed and truncated. */
const IDLE_CHECKPOINT_MS = 2000;

export class Batch {
  private open = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Told when a commit failed and was rolled back: what was cached from the lost writes is wrong. */
  private rollbackListeners: (() => void)[] = [];
  private idle?: Timer;
  constructor(private db: Database) {}

  /**
   * After a burst of writes, once the database has been quiet for a moment, the WAL is folded into the database
   * and cut back to nothing: checkpoints run only every 16,000 pages (64 MiB) while busy, and a WAL file keeps
   * its largest size otherwise.
   */
  private checkpointWhenIdle(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      try {
        this.db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch {} // a reader in the way: the next quiet moment tries again
    }, IDLE_CHECKPOINT_MS);
    this.idle.unref();
  }

  onRollback(fn: () => void): void {
    this.rollbackListeners.push(fn);
  }

  /** Called before every write. */
  begin(): void {
    if (this.open) return;
    this.db.run("BEGIN");
    this.open = true;
    setImmediate(() => this.commit());
  }

  commit(): void {
    if (!this.open) return;
    const waiters = this.waiters;
    this.waiters = [];
    this.open = false;
    try {
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
