// Rates over time for the console's overview (`GET /stats/rates`): the manager reads its own totals at a fixed
// interval and keeps the last few samples in a ring, so the memory is bounded whatever the uptime or the load.
// Pure: the caller reads the totals and the clock.

/** Totals since start (counters) and gauges, as read at one instant. */
export interface Totals {
  started: number;
  completed: number;
  failed: number;
  mqtt_received: number;
  mqtt_sent: number;
  queue_depth: number;
  /** MQTT clients connected to the embedded broker; null with an external broker (not ours to count). */
  clients: number | null;
}

/** One interval: counters as per-second rates over it, gauges as read at its end. */
export interface RateSample {
  at: string;
  started_per_s: number;
  completed_per_s: number;
  failed_per_s: number;
  mqtt_messages_per_s: number;
  queue_depth: number;
  clients: number | null;
}

export const RATE_SAMPLES_MAX = 120;

const perSecond = (a: number, b: number, seconds: number) =>
  seconds > 0 ? Math.max(0, Math.round(((b - a) / seconds) * 100) / 100) : 0;

export class RateRing {
  private ring: RateSample[] = [];
  private last?: { ms: number; t: Totals };

  constructor(readonly capacity = RATE_SAMPLES_MAX) {}

  /** Takes the totals read at `ms`; the first reading is only a baseline (no interval yet). */
  push(ms: number, t: Totals): void {
    const prev = this.last;
    this.last = { ms, t };
    if (!prev) return;
    const s = (ms - prev.ms) / 1000;
    this.ring.push({
      at: new Date(ms).toISOString(),
      started_per_s: perSecond(prev.t.started, t.started, s),
      completed_per_s: perSecond(prev.t.completed, t.completed, s),
      failed_per_s: perSecond(prev.t.failed, t.failed, s),
      mqtt_messages_per_s: perSecond(prev.t.mqtt_received + prev.t.mqtt_sent, t.mqtt_received + t.mqtt_sent, s),
      queue_depth: t.queue_depth,
      clients: t.clients,
    });
    if (this.ring.length > this.capacity) this.ring.shift();
  }

  /** The newest `limit` samples, oldest first (as a chart plots them). */
  samples(limit = this.capacity): RateSample[] {
    return this.ring.slice(Math.max(0, this.ring.length - limit));
  }
}
