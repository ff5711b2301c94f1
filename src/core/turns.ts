// The proxy's fetch slots: `max` modules fetched at once (each held in memory meanwhile, up to the module bound),
// at most `perHost` of them from one registry. With one pool for all, two tasks naming a registry that took the
// connection and never answered held both slots, and every other module of the site waited behind them, or its
// proplet gave up. Waiting fetches go in the order they came, each as soon as its registry has room.

export class Turns {
  private running = 0;
  private byHost = new Map<string, number>();
  private waiting: { host: string; go: () => void }[] = [];

  constructor(
    private max: number,
    private perHost: number,
  ) {}

  /** Resolves when a fetch from `host` may start; `give(host)` ends it. */
  take(host: string): Promise<void> {
    if (this.fits(host)) {
      this.start(host);
      return Promise.resolve();
    }
    return new Promise((go) => this.waiting.push({ host, go }));
  }

  give(host: string): void {
    this.running--;
    const n = (this.byHost.get(host) ?? 1) - 1;
    if (n > 0) this.byHost.set(host, n);
    else this.byHost.delete(host);
    // The first waiting fetch whose registry has room now; it starts before anything else can take the slot.
    const i = this.waiting.findIndex((w) => this.fits(w.host));
    if (i < 0) return;
    const [next] = this.waiting.splice(i, 1);
    this.start(next!.host);
    next!.go();
  }

  /** Fetches running and waiting (for tests and figures). */
  get size(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  private fits(host: string): boolean {
    return this.running < this.max && (this.byHost.get(host) ?? 0) < this.perHost;
  }

  private start(host: string): void {
    this.running++;
    this.byHost.set(host, (this.byHost.get(host) ?? 0) + 1);
  }
}
