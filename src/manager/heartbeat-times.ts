import type { Proplet } from "../core/proplet.ts";
import { isoAt } from "../core/time.ts";

// Each proplet's last heartbeat as a number beside the text its history keeps: liveness is asked on every
// heartbeat, every placement and every sweep of thousands of proplets, and parsing the text each time was
// measurable (scripts/bench/fleet.ts). A heartbeat's text is made once per millisecond (core/time.ts isoAt): ten
// thousand proplets beat about ten to a millisecond.

export class HeartbeatTimes {
  private last = new Map<string, { iso: string; ms: number }>();

  /** The time of `p`'s last heartbeat in milliseconds, parsed once; undefined when it has none. */
  lastMs(p: Proplet): number | undefined {
    const iso = p.alive_history.at(-1);
    if (iso === undefined) return undefined;
    let last = this.last.get(p.id);
    if (last?.iso !== iso) {
      last = { iso, ms: Date.parse(iso) };
      this.last.set(p.id, last);
    }
    return last.ms;
  }

  /** A heartbeat heard at `ms`: its text, which is what the proplet's history gets. */
  heard(id: string, ms: number): string {
    const iso = isoAt(ms);
    const last = this.last.get(id);
    if (last) {
      last.iso = iso;
      last.ms = ms;
    } else this.last.set(id, { iso, ms });
    return iso;
  }

  forget(id: string): void {
    this.last.delete(id);
  }
}
