import type { Database } from "bun:sqlite";

/** Group commit: one open transaction per event-loop turn, and promises for "committed". */
export class Batch {
  private open = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Told when a commit failed and was rolled back: what was cached from the lost writes is wrong. */
  private rollbackListeners: (() => void)[] = [];
  constructor(private db: Database) {}

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
  }

  durable(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
