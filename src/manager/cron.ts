import { MinHeap } from "../core/heap.ts";

// One timer for the next due schedule, not a polling scan: a min-heap of (due time, task id). Entries are not
// removed on unschedule; a stale one is recognised on pop because its time no longer matches the task's.

export class CronRunner {
  private heap = new MinHeap<{ at: number; id: string }>();
  private due = new Map<string, number>();
  private timer?: Timer;
  private armedFor = Infinity;

  constructor(private fire: (id: string, scheduledAt: number) => void) {}

  get size(): number {
    return this.due.size;
  }

  set(id: string, at: number): void {
    this.due.set(id, at);
    this.heap.push({ at, id });
    if (at < this.armedFor) this.arm();
  }

  remove(id: string): void {
    this.due.delete(id);
  }

  private arm(): void {
    clearTimeout(this.timer);
    const next = this.heap.peek();
    this.armedFor = next?.at ?? Infinity;
    if (!next) return;
    // setTimeout's limit is ~24.8 days; farther schedules re-arm on the way.
    const delay = Math.min(Math.max(0, next.at - Date.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => this.run(), delay);
  }

  private run(): void {
    const now = Date.now();
    for (let top = this.heap.peek(); top && top.at <= now; top = this.heap.peek()) {
      this.heap.pop();
      if (this.due.get(top.id) !== top.at) continue; // stale entry
      this.due.delete(top.id);
      this.fire(top.id, top.at);
    }
    this.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.armedFor = Infinity;
  }
}
