// Bytes a peer may send, per key (an identity, over all its connections): a token bucket of `burst` bytes that
// refills at `perSecond`. Pure: the caller gives the time. A reader asks how long to wait before its next read
// (0: read now), reads, and spends what it read; a read may take the bucket below zero, and the next waits until it
// is back at zero. Full buckets are dropped when the table grows, so it holds only the keys recently sending.

export interface ByteRateBound {
  perSecond: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const SWEEP_AT = 4096;

export class ByteRate {
  private buckets = new Map<string, Bucket>();

  constructor(private bound: ByteRateBound) {}

  /** Milliseconds to wait before `key` may read again (0: now). */
  wait(key: string, nowMs: number): number {
    const b = this.refilled(key, nowMs);
    return b.tokens > 0 ? 0 : Math.ceil(((-b.tokens + 1) * 1000) / this.bound.perSecond);
  }

  /** `bytes` were read for `key`. */
  spend(key: string, bytes: number, nowMs: number): void {
    this.refilled(key, nowMs).tokens -= bytes;
  }

  get size(): number {
    return this.buckets.size;
  }

  private refilled(key: string, nowMs: number): Bucket {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= SWEEP_AT) this.sweep(nowMs);
      b = { tokens: this.bound.burst, at: nowMs };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.bound.burst, b.tokens + ((nowMs - b.at) / 1000) * this.bound.perSecond);
    b.at = nowMs;
    return b;
  }

  private sweep(nowMs: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((nowMs - b.at) / 1000) * this.bound.perSecond >= this.bound.burst) this.buckets.delete(k);
  }
}
