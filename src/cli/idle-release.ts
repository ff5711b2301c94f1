import type { Storage } from "../storage/repository.ts";

// Memory back after a burst (issue 30): once serve has been quiet a few seconds after tasks ended, and its resident
// memory grew past a margin since the last time, it lets go of what only made the burst faster. What stays over
// serve's idle start after a 50,000-task burst, and what each step gave back (measured with bun:jsc heapStats and
// /proc smaps, compiled serve; README "Performance"): the caches of parsed tasks and last-run columns (4,096
// each) kept ~37,000 strings and objects spread over JavaScriptCore's blocks, which keep their whole block;
// emptied and collected, ~20 MiB. `Bun.shrink()` (JIT code dropped, a full collection, free malloc memory
// released) ~12 MiB more; SQLite's page cache ~2. A full `Bun.gc(true)` alone gave ~4 MiB. The kept Wasm worker
// retires after a burst (src/proplet/runtime/pool.ts RETIRE_AFTER_RUNS).
// A standalone proplet uses it too (src/cli/proplet.ts), with no store to empty.
// Nothing runs while nothing happens: a timer is armed by activity only, and looks once.

/** Quiet time after the last activity before memory is looked at. */
export const QUIET_MS = 5000;
/** Growth of resident memory since the last release (or the start) that makes a quiet moment release. */
export const GROWTH_BYTES = 8 << 20;
/**
 * Growth from which the release also drops compiled code (a burst): the hot code compiles again after it, which
 * made the next first task after an idle spell cost 9-34 ms instead of 2-5 (scripts/bench/idle-first.ts, compiled)
 * and regrew ~8 MiB, so a smaller growth (that regrowth, a few tasks) only empties caches and collects.
 */
export const DEEP_GROWTH_BYTES = 32 << 20;

export interface IdleReleaseOptions {
  quietMs?: number;
  growthBytes?: number;
  deepGrowthBytes?: number;
  /** Resident memory now, in bytes. */
  rss?: () => number;
}

/**
 * Calls `release` once serve has been quiet `quietMs` after an `activity()`, if resident memory grew at least
 * `growthBytes` over its figure after the last release (or at the start); `deep` when it grew `deepGrowthBytes`.
 * A trickle of tasks that leaves memory as it was never pays for a release (each costs a full collection).
 */
export class IdleRelease {
  private timer?: Timer;
  private last = 0;
  private baseline: number;
  private stopped = false;
  private readonly quietMs: number;
  private readonly growthBytes: number;
  private readonly deepGrowthBytes: number;
  private readonly rss: () => number;

  constructor(
    private release: (deep: boolean) => void,
    o: IdleReleaseOptions = {},
  ) {
    this.quietMs = o.quietMs ?? QUIET_MS;
    this.growthBytes = o.growthBytes ?? GROWTH_BYTES;
    this.deepGrowthBytes = o.deepGrowthBytes ?? DEEP_GROWTH_BYTES;
    this.rss = o.rss ?? currentRss;
    this.baseline = this.rss();
  }

  /** Something happened (a task ended): one timer, not one per call, looks once serve is quiet. */
  activity(): void {
    this.last = performance.now();
    if (!this.timer && !this.stopped) this.arm(this.quietMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number, fn = () => this.check()): void {
    this.timer = setTimeout(fn, ms);
    this.timer.unref();
  }

  private check(): void {
    this.timer = undefined;
    const quiet = performance.now() - this.last;
    if (quiet < this.quietMs) {
      this.arm(this.quietMs - quiet);
      return;
    }
    if (Number.isNaN(this.baseline)) this.baseline = this.rss();
    const grown = this.rss() - this.baseline;
    if (Number.isNaN(grown)) {
      this.arm(this.quietMs); // not readable now (no file descriptor left): looked at again later
      return;
    }
    if (grown < this.growthBytes) return;
    this.release(grown >= this.deepGrowthBytes);
    // The new baseline once the release took effect (Bun.shrink's work runs after this callback returns); activity
    // meanwhile re-arms the quiet timer after it.
    this.arm(0, () => {
      this.timer = undefined;
      const now = this.rss();
      if (!Number.isNaN(now)) this.baseline = now;
      if (performance.now() - this.last < this.quietMs) this.arm(this.quietMs);
    });
  }
}

/**
 * The process's RSS, NaN when it cannot be read: it comes from /proc, and with no file descriptor left (clients
 * holding serve's connections) the read throws, which on this timer ended serve.
 */
function currentRss(): number {
  try {
    return process.memoryUsage.rss();
  } catch {
    return Number.NaN;
  }
}

/** serve's release: the store's caches, compiled code when `deep`, the JS heap; freed pages go back to the OS. */
export function releaseMemory(store: Pick<Storage, "release">, deep: boolean): void {
  store.release?.();
  // Drops JIT code, collects fully and frees WTF's malloc caches once this call returns to the event loop
  // (deprecated in Bun's types, without a replacement that drops compiled code).
  if (deep) Bun.shrink();
  // Bun.gc(true) ends with mimalloc's forced purge: the pages the collection freed go back to the OS now.
  setTimeout(() => Bun.gc(true), 0).unref();
}
