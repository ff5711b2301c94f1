// Connections per address: at most `max` open at once, and new ones at `perSecond` once a burst of `max` is spent
// (a token bucket). Pure: the caller gives the time. Entries go when an address has nothing open and a full bucket,
// so the table is as large as the addresses connected or recently connecting.

export interface AddressBound {
  max: number;
  perSecond: number;
}

interface Entry {
  open: number;
  tokens: number;
  at: number;
}

export class AddressLimiter {
  private entries = new Map<string, Entry>();

  constructor(private boundOf: (address: string) => AddressBound) {}

  /** Takes a place for a new connection from `address`, or says why it is refused. */
  admit(address: string, nowMs: number): string | undefined {
    const bound = this.boundOf(address);
    let e = this.entries.get(address);
    if (!e) {
      if (this.entries.size >= 4096) this.sweep(nowMs);
      e = { open: 0, tokens: bound.max, at: nowMs };
      this.entries.set(address, e);
    }
    e.tokens = Math.min(bound.max, e.tokens + ((nowMs - e.at) / 1000) * bound.perSecond);
    e.at = nowMs;
    if (e.open >= bound.max) return `${e.open} connections open from ${address} (at most ${bound.max})`;
    if (e.tokens < 1) return `connections from ${address} come faster than ${bound.perSecond} a second`;
    e.tokens -= 1;
    e.open++;
    return undefined;
  }

  /** A connection `admit` let in has closed. */
  release(address: string): void {
    const e = this.entries.get(address);
    if (e && e.open > 0) e.open--;
  }

  private sweep(nowMs: number): void {
    for (const [address, e] of this.entries) {
      const bound = this.boundOf(address);
      if (e.open === 0 && e.tokens + ((nowMs - e.at) / 1000) * bound.perSecond >= bound.max)
        this.entries.delete(address);
    }
  }
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
export function isLoopback(address: string): boolean {
  const a = address.startsWith("::ffff:") ? address.slice(7) : address;
  return a === "::1" || a.startsWith("127.");
}
