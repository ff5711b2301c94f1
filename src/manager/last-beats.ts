import { isAlive, type Proplet } from "../core/proplet.ts";

// Each proplet's last heartbeat as a number, for the registry (proplets.ts): liveness is asked on every heartbeat,
// every placement and every sweep over the whole fleet, and parsing the RFC3339 text of the last beat each time
// was measurable with 10,000 proplets (scripts/bench/fleet.ts). The text is the stored truth (alive_history); the
// number is kept beside it and taken only while it is of that same text.

export class LastBeats {
  private lastMs = new Map<string, { iso: string; ms: number }>();
  /** The text of a heartbeat's time: ten thousand proplets beat about ten to a millisecond, so it is made once. */
  private lastIso = { ms: Number.NaN, iso: "" };

  constructor(private thresholdMs: number) {}

  alive(p: Proplet, now: number): boolean {
    return isAlive(p, now, this.thresholdMs, this.ms(p));
  }

  /** The last heartbeat of `p` in ms, parsed once per heartbeat text. */
  ms(p: Proplet): number | undefined {
    const iso = p.alive_history.at(-1);
    if (iso === undefined) return undefined;
    let last = this.lastMs.get(p.id);
    if (last?.iso !== iso) {
      last = { iso, ms: Date.parse(iso) };
      this.lastMs.set(p.id, last);
    }
    return last.ms;
  }

  /** A heartbeat of proplet `id` heard at `now`: returns its time as text, for the history. */
  beat(id: string, now: number): string {
    if (this.lastIso.ms !== now) this.lastIso = { ms: now, iso: new Date(now).toISOString() };
    const at = this.lastIso.iso;
    const last = this.lastMs.get(id); // known already: not parsed back from the text
    if (last) {
      last.iso = at;
      last.ms = now;
    } else this.lastMs.set(id, { iso: at, ms: now });
    return at;
  }

  forget(id: string): void {
    this.lastMs.delete(id);
  }
}
