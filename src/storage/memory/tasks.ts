import { metadataText } from "../../core/metadata.ts";
import type { Task } from "../../core/task.ts";
import type { TaskFind } from "../../core/task-query.ts";
import { findTasks } from "../find.ts";
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
  /** Metadata key → value as text → task ids: a filtered listing reads only the tasks that match. */
  private meta = new Map<string, Map<string, Set<string>>>();

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

  private index(t: Task, add: boolean): void {
    for (const [k, v] of Object.entries(t.metadata ?? {})) {
      const text = metadataText(v);
      if (text === undefined) continue;
      const byValue = this.meta.get(k) ?? new Map<string, Set<string>>();
      this.meta.set(k, byValue);
      const ids = byValue.get(text) ?? new Set<string>();
      if (add) byValue.set(text, ids.add(t.id));
      else if (ids.delete(t.id) && ids.size === 0) byValue.delete(text);
    }
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
    this.index(t, true);
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
    if (old.metadata !== t.metadata && JSON.stringify(old.metadata) !== JSON.stringify(t.metadata)) {
      this.index(old, false);
      this.index(t, true);
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
    this.index(t, false);
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
    // The smallest set of ids first; the others only narrow it.
    const sets = Object.entries(metadata)
      .map(([k, v]) => this.meta.get(k)?.get(v) ?? new Set<string>())
      .sort((a, b) => a.size - b.size);
    const [first, ...rest] = sets as [Set<string>, ...Set<string>[]];
    const keys: Key[] = [];
    for (const id of first) if (rest.every((s) => s.has(id))) keys.push(this.byId.get(id)!);
    keys.sort((a, b) => (before(a, b) ? 1 : -1)); // newest first
    const items = keys.slice(offset, offset + limit).map((k) => withoutFile(this.byId.get(k.id)!));
    return { total: keys.length, items };
  }

  find(f: TaskFind, offset: number, limit: number): ListResult<Task> {
    const r = findTasks(this.byId.values(), f, offset, limit);
    return { total: r.total, items: r.items.map((t) => withoutFile(t as Task)) };
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
