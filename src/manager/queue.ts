import { type Queued, queueOrder } from "../core/scheduler.ts";
import type { Task } from "../core/task.ts";

// Tasks waiting for a proplet slot, kept sorted by the queue order (priority, then age): draining walks it in
// order without sorting, and an insert or removal is a binary search plus one splice, so a backlog of thousands
// stays cheap on every task completion.

export type Entry = Queued & { task: Task };

export class TaskQueue {
  private byId = new Map<string, Entry>();
  private sorted: Entry[] = [];

  get size(): number {
    return this.sorted.length;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get(id: string): Entry | undefined {
    return this.byId.get(id);
  }

  private index(e: Entry): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (queueOrder(this.sorted[mid]!, e) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  set(e: Entry): void {
    this.delete(e.id);
    this.byId.set(e.id, e);
    this.sorted.splice(this.index(e), 0, e);
  }

  delete(id: string): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    this.byId.delete(id);
    const i = this.index(e);
    if (this.sorted[i]?.id === id) this.sorted.splice(i, 1);
    else
      this.sorted.splice(
        this.sorted.findIndex((x) => x.id === id),
        1,
      ); // not reached with a total order
    return true;
  }

  /** A snapshot in queue order (draining removes entries while walking). */
  inOrder(): Entry[] {
    return this.sorted.slice();
  }
}
