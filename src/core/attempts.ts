// Failed attempts counted per key (a client address) in fixed windows, with a ceiling for all keys together: a
// caller past either is refused until the window turns. The map of keys is bounded too (past `maxKeys` addresses
// in one window, the others share one count), so counting costs no more memory than it saves.

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
    if (this.total >= this.limits.total) return wait;
    return (this.counts.get(this.slot(key)) ?? 0) >= this.limits.perKey ? wait : 0;
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
