import { RateRing, type Totals } from "../core/rates.ts";

// Reads the manager's own totals at a fixed interval into a bounded ring (src/core/rates.ts), for the overview's
// rates over time (`GET /stats/rates`). The timer does not hold the process open; serve stops it on close.

export const RATE_INTERVAL_MS = 5000;

export class RateSampler {
  readonly ring = new RateRing();
  private timer?: ReturnType<typeof setInterval>;

  constructor(
    private read: () => Totals,
    readonly intervalMs = RATE_INTERVAL_MS,
  ) {}

  start(): this {
    this.ring.push(Date.now(), this.read());
    this.timer = setInterval(() => this.ring.push(Date.now(), this.read()), this.intervalMs);
    this.timer.unref?.();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
