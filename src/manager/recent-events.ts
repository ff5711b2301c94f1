import type { ManagerEvent } from "../core/events.ts";
import type { Channel } from "./events.ts";

// The last live events, kept so a console that arrives (or reloads) sees what just happened instead of an empty
// list (`GET /events/recent`). Bounded: a ring of `capacity` events, whatever the rate. Metrics samples are left
// out (many per second, and they have their own store); no event carries env, so a viewer may read them all.

export const RECENT_EVENTS_MAX = 100;

export class RecentEvents {
  private ring: ManagerEvent[] = [];

  constructor(
    live: Channel<ManagerEvent>,
    readonly capacity = RECENT_EVENTS_MAX,
  ) {
    live.subscribe((e) => {
      if (e.type === "metrics") return;
      this.ring.push(e);
      if (this.ring.length > this.capacity) this.ring.shift();
    });
  }

  /** The newest `limit` events, newest first. */
  list(limit = this.capacity): ManagerEvent[] {
    return this.ring.slice(Math.max(0, this.ring.length - limit)).reverse();
  }
}
