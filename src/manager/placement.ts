import type { Proplet } from "../core/proplet.ts";
import { canHost } from "../core/requirements.ts";
import { place, type SchedulerName } from "../core/scheduler.ts";
import type { Task } from "../core/task.ts";
import type { Candidate } from "./proplets.ts";
import { TaskQueue } from "./queue.ts";

// Which waiting task runs where: the queue in priority order (then age), and the scheduler's pick among the alive
// proplets with a free slot. The dispatcher owns what a placement then means (a run).

export class Placement {
  /** Queued tasks, kept whole so placing them needs no storage read. */
  private queue = new TaskQueue();
  private lastPick: string | undefined;

  constructor(private scheduler: SchedulerName) {}

  get size(): number {
    return this.queue.size;
  }

  has(id: string): boolean {
    return this.queue.has(id);
  }

  add(task: Task, queuedAt: number): void {
    this.queue.set({ id: task.id, priority: task.priority, queuedAt, task });
  }

  /** A queued task was edited: its place follows its new priority. */
  update(task: Task): void {
    const queued = this.queue.get(task.id);
    if (queued) this.queue.set({ ...queued, priority: task.priority, task });
  }

  delete(id: string): void {
    this.queue.delete(id);
  }

  /** Places queued tasks, highest priority first, while candidates have free slots; `run` takes each placement. */
  drain(cands: Candidate[], run: (task: Task, proplet: Proplet) => void): void {
    if (this.queue.size === 0 || !cands.some((c) => c.running < c.capacity)) return;
    for (const q of this.queue.inOrder()) {
      const task = q.task;
      const pinned = task.pinned && task.proplet_id;
      const able = pinned || task.requirements ? cands.filter((c) => canHost(task, c.proplet, c.vouched)) : cands;
      const chosen = place(this.scheduler, able, this.lastPick);
      if (!chosen) {
        // Strict priority: nothing of lower priority passes a waiting task.
        if (this.scheduler === "priority") return;
        continue;
      }
      if (!pinned) this.lastPick = chosen.id;
      chosen.running++;
      this.queue.delete(q.id);
      run(task, chosen.proplet);
      if (!cands.some((c) => c.running < c.capacity)) return;
    }
  }
}
