// Which runs each proplet has now, in memory only (a proplet's task_count is derived from it, never stored): each
// task's current run by task id, and the runs beside a task's current one (concurrent cron firings) by run id.
// Both take one of the proplet's slots.

export class RunsOn {
  private current = new Map<string, Set<string>>();
  private extra = new Map<string, Set<string>>();

  track(propletId: string, taskId: string, running: boolean): void {
    mark(this.current, propletId, taskId, running);
  }

  trackExtra(propletId: string, runId: string, running: boolean): void {
    mark(this.extra, propletId, runId, running);
  }

  count(propletId: string): number {
    return (this.current.get(propletId)?.size ?? 0) + (this.extra.get(propletId)?.size ?? 0);
  }

  tasks(propletId: string): string[] {
    return [...(this.current.get(propletId) ?? [])];
  }

  forget(propletId: string): void {
    this.current.delete(propletId);
    this.extra.delete(propletId);
  }
}

/** Adds or removes `id` in the set kept for `propletId`. */
function mark(sets: Map<string, Set<string>>, propletId: string, id: string, on: boolean): void {
  let set = sets.get(propletId);
  if (!set) {
    set = new Set();
    sets.set(propletId, set);
  }
  if (on) set.add(id);
  else set.delete(id);
}
