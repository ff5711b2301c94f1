// Something said at most once a while per key (a log line for a flood): `due` answers true for a key's first time
// and then again only after `ms`. Pure: the caller gives the time. Bounded: the table starts over past `max` keys.

export class OncePer {
  private said = new Map<string, number>();

  constructor(
    private ms: number,
    private max = 1000,
  ) {}

  due(key: string, nowMs: number): boolean {
    if ((this.said.get(key) ?? Number.NEGATIVE_INFINITY) + this.ms > nowMs) return false;
    if (this.said.size >= this.max) this.said.clear();
    this.said.set(key, nowMs);
    return true;
  }
}
