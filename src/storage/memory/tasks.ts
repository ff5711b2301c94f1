import { matchesMetadata } from "../../core/metadata.ts";
import type { Task } from "../../core/task.ts";
import type { Journal } from "../journal.ts";
import type { ListResult, TaskRepository } from "../repository.ts";

// Tasks in maps, with the orderings and indexes the manager's queries need: creation order (newest first for
// listings, oldest first within a group), groups, scheduled ids and counts by state. Callers get copies.

type Key = { created_at: string; id: string };
const before = (a: Key, b: Key) => a.created_at < b.created_at || (a.created_at === b.created_at && a.id < b.id);
const withoutFile = ({ file: _, ...t }: Task): Task => t;

export class MemoryTasks implements TaskRepository {
  private byId = new Map<string, Task>();
  /** Oldest first by (created_at, id); tasks mostly arrive in order, so inserting is a push. */
  private order: Key[] = [];
  private groups = { job: new Map<string, Set<string>>(), workflow: new Map<string, Set<string>>() };
  private scheduled = new Set<string>();
  private counts = new Map<number, number>();

  constructor(private journal?: Journal) {}

  private position(k: Key): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.order[mid]!, k)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private count(state: number, by: number): void {
    const n = (this.counts.get(state) ?? 0) + by;
    if (n) this.counts.set(state, n);
    else this.counts.delete(state);
  }

  private group(t: Task, add: boolean): void {
    for (const kind of ["job", "workflow"] as const) {
      const id = kind === "job" ? t.job_id : t.workflow_id;
      if (!id) continue;
      const set = this.groups[kind].get(id) ?? new Set();
      if (add) this.groups[kind].set(id, set.add(t.id));
      else if (set.delete(t.id) && set.size === 0) this.groups[kind].delete(id);
    }
  }

  create(task: Task): void {
    if (this.byId.has(task.id)) throw new Error(`task ${task.id} already exists`);
    const t = { ...task };
    this.byId.set(t.id, t);
    const k = { created_at: t.created_at, id: t.id };
    const last = this.order.at(-1);
    if (!last || before(last, k)) this.order.push(k);
    else this.order.splice(this.position(k), 0, k);
    this.group(t, true);
    if (t.schedule) this.scheduled.add(t.id);
    this.count(t.state, 1);
    this.journal?.record({ kind: "task", task: t, withFile: true });
  }

  get(id: string): Task | undefined {
    const t = this.byId.get(id);
    return t && { ...t };
  }

  update(task: Task, withFile = false): void {
    const old = this.byId.get(task.id);
    if (!old) return;
    const t: Task = withFile ? { ...task } : { ...withoutFile(task), ...(old.file ? { file: old.file } : {}) };
    this.byId.set(t.id, t);
    // Re-adding would move the task to its group's end: regroup only when the group changed.
    if (old.job_id !== t.job_id || old.workflow_id !== t.workflow_id) {
      this.group(old, false);
      this.group(t, true);
    }
    if (t.schedule) this.scheduled.add(t.id);
    else this.scheduled.delete(t.id);
    this.count(old.state, -1);
    this.count(t.state, 1);
    this.journal?.record({ kind: "task", task: t, withFile });
  }

  delete(id: string): boolean {
    const t = this.byId.get(id);
    if (!t) return false;
    this.byId.delete(id);
    const at = this.position(t);
    if (this.order[at]?.id === id) this.order.splice(at, 1);
    this.group(t, false);
    this.scheduled.delete(id);
    this.count(t.state, -1);
    this.journal?.record({ kind: "task-delete", id });
    return true;
  }

  list(offset: number, limit: number, metadata?: Record<string, string>): ListResult<Task> {
    const n = this.order.length;
    if (!metadata || !Object.keys(metadata).length) {
      const items: Task[] = [];
      for (let i = n - 1 - offset; i >= 0 && items.length < limit; i--) {
        items.push(withoutFile(this.byId.get(this.order[i]!.id)!));
      }
      return { total: n, items };
    }
    let total = 0;
    const items: Task[] = [];
    for (let i = n - 1; i >= 0; i--) {
      const t = this.byId.get(this.order[i]!.id)!;
      if (!matchesMetadata(t.metadata, metadata)) continue;
      if (total >= offset && items.length < limit) items.push(withoutFile(t));
      total++;
    }
    return { total, items };
  }

  listByState(states: number[]): Task[] {
    const want = new Set(states);
    return [...this.byId.values()].filter((t) => want.has(t.state)).map((t) => ({ ...t }));
  }

  listByGroup(kind: "job" | "workflow", id: string): Task[] {
    return [...(this.groups[kind].get(id) ?? [])].map((t) => ({ ...this.byId.get(t)! }));
  }

  groupIds(kind: "job" | "workflow"): string[] {
    return [...this.groups[kind].keys()];
  }

  countByState(): Record<number, number> {
    return Object.fromEntries(this.counts);
  }

  listScheduled(): Task[] {
    return [...this.scheduled].map((id) => withoutFile(this.byId.get(id)!));
  }

  idsStartingWith(prefix: string, limit: number): string[] {
    const out: string[] = [];
    for (const id of this.byId.keys()) if (id.startsWith(prefix)) out.push(id);
    return out.sort().slice(0, limit);
  }
}
