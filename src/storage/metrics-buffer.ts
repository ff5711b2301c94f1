import type { ListResult, MetricsRepository, Storage } from "./repository.ts";
import { METRICS_RETENTION } from "./retention.ts";

// Metrics samples in memory, written to the store in batches. Every proplet sends a sample every 10 s (and every
// running task may): written one by one, each was a commit of its own, a few pages of flash for a hundred bytes
// (scripts/bench/wear.ts). A sample is telemetry that nobody acknowledged: on a kill -9 at most the last
// FLUSH_MS of them are lost; a graceful stop writes them all. Reads see the samples held here first, as the
// newest (a proplet sends them in order), then the stored ones.

/** How often held samples are written. */
export const METRICS_FLUSH_MS = 10 * 60_000;
/** Held samples beyond which they are written at once, so that memory stays bounded with many proplets. */
const MAX_HELD = 20_000;

type Kind = "proplet" | "task";
interface Held {
  kind: Kind;
  owner: string;
  at: string;
  sample: unknown;
}

export class BufferedMetrics implements MetricsRepository {
  /** Per kind and owner, oldest first, at most METRICS_RETENTION each (older ones would be dropped anyway). */
  private held = new Map<string, Held[]>();
  private count = 0;
  private timer: ReturnType<typeof setInterval>;

  constructor(private inner: MetricsRepository) {
    this.timer = setInterval(() => this.flush(), METRICS_FLUSH_MS);
    this.timer.unref?.();
  }

  addProplet(id: string, at: string, sample: unknown): void {
    this.add({ kind: "proplet", owner: id, at, sample });
  }
  addTask(id: string, at: string, sample: unknown): void {
    this.add({ kind: "task", owner: id, at, sample });
  }
  listProplet(id: string, offset: number, limit: number): ListResult<unknown> {
    return this.list("proplet", id, offset, limit);
  }
  listTask(id: string, offset: number, limit: number): ListResult<unknown> {
    return this.list("task", id, offset, limit);
  }

  private add(h: Held): void {
    const key = `${h.kind}\0${h.owner}`;
    let list = this.held.get(key);
    if (!list) {
      list = [];
      this.held.set(key, list);
    }
    list.push(h);
    this.count++;
    if (list.length > METRICS_RETENTION) {
      list.shift();
      this.count--;
    }
    if (this.count >= MAX_HELD) this.flush();
  }

  private list(kind: Kind, owner: string, offset: number, limit: number): ListResult<unknown> {
    const mine = this.held.get(`${kind}\0${owner}`) ?? [];
    const read = (o: number, l: number) =>
      kind === "proplet" ? this.inner.listProplet(owner, o, l) : this.inner.listTask(owner, o, l);
    const newest = mine.slice().reverse();
    const fromHeld = newest.slice(offset, offset + limit).map((h) => h.sample);
    const rest = limit - fromHeld.length;
    const stored = read(Math.max(0, offset - newest.length), Math.max(rest, 0));
    const total = Math.min(METRICS_RETENTION, newest.length + stored.total);
    const items = [...fromHeld, ...stored.items].slice(0, Math.max(0, Math.min(limit, total - offset)));
    return { total, items };
  }

  /** Writes what is held (one commit: the store groups a turn's writes). */
  flush(): void {
    if (this.count === 0) return;
    const all = [...this.held.values()].flat();
    this.held.clear();
    this.count = 0;
    for (const h of all) {
      if (h.kind === "proplet") this.inner.addProplet(h.owner, h.at, h.sample);
      else this.inner.addTask(h.owner, h.at, h.sample);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The store with its metrics held in memory and written in batches; closing writes what is held first. */
export function withBufferedMetrics(store: Storage): Storage {
  const metrics = new BufferedMetrics(store.metrics);
  return {
    ...store,
    metrics,
    close: () => {
      metrics.stop();
      metrics.flush();
      return store.close();
    },
  };
}
