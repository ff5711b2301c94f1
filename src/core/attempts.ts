// Failed attempts counted per key (a client address) in fixed windows, with a ceiling for all keys together: a
// caller past its own limit, or one that failed once the ceiling is reached, is refused until the window turns.
// The map of keys is bounded too (past `maxKeys` addresses in one window, the others share one count), so
// counting costs no more memory than it saves.

export interface AttemptLimits {
  perKey: number;
  total: number;
  windowMs: number;
  maxKeys: number;
}

export class Attempts {
  private counts = new Map<string, number>();
  private total = 0;
  private windowStart = 0;

  constructor(private limits: AttemptLimits) {}

  /** Milliseconds until `key` may try again, or 0 when it may now. */
  blocked(key: string, now: number): number {
    this.turn(now);
    const wait = this.windowStart + this.limits.windowMs - now;
    const mine = this.counts.get(this.slot(key)) ?? 0;
    // Past the ceiling for all keys, only those that failed are refused: one that has not may still try. A global
    // lockout let anyone shut everyone out of sign-in and joins for 2 requests a second; the secrets tried are
    // random (128 bits and more), so the ceiling only has to stop many tries, not every try.
    if (this.total >= this.limits.total) return mine > 0 ? wait : 0;
    return mine >= this.limits.perKey ? wait : 0;
  }

  /** Counts a failure of `key`. */
  failed(key: string, now: number): void {
    this.turn(now);
    const k = this.slot(key);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    this.total++;
  }

  private slot(key: string): string {
    return this.counts.has(key) || this.counts.size < this.limits.maxKeys ? key : "\0others";
  }

  private turn(now: number): void {
    if (now - this.windowStart < this.limits.windowMs) return;
    this.windowStart = now;
    this.counts.clear();
    this.total = 0;
  }
}
