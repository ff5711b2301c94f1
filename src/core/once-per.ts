// Something said at most once a while per key (a log line for a flood). Pure: the caller gives the time. Bounded:
// the table starts over past `max` keys.

/**
 * Lines of one kind folded per key (an identity and what it did): the first is said at once, then at most one a
 * `ms`, saying how many were held back since. A flood of refusals from one sender is a line a while, not a line a
 * message: a proplet's 45,000 small messages a second were as many log lines.
 */
export class Folded {
  private keys = new Map<string, { at: number; held: number }>();

  constructor(
    private ms: number,
    private max = 1000,
  ) {}

  /** What to add to the line to say now (`""` or "(N more like it…)"), or undefined to hold it back. */
  say(key: string, nowMs: number): string | undefined {
    const k = this.keys.get(key);
    if (k && nowMs - k.at < this.ms) {
      k.held++;
      return undefined;
    }
    if (!k && this.keys.size >= this.max) this.keys.clear();
    this.keys.set(key, { at: nowMs, held: 0 });
    return k?.held ? ` (${k.held} more like it in the ${Math.round((nowMs - k.at) / 1000)} s before)` : "";
  }
}

/** A key's first time, then again only after `ms`: a Folded line whose count is not said. */
export class OncePer extends Folded {
  due(key: string, nowMs: number): boolean {
    return this.say(key, nowMs) !== undefined;
  }
}
