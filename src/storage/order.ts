import type { ListResult } from "./repository.ts";

// Orders and shapes the backends share, so that each gives the same answer the SQL backends' ORDER BY gives.

/** By `created_at` (newest first with `newest`), then by id ascending: `ORDER BY created_at [DESC], id`. */
export const byCreated =
  (newest = false) =>
  (a: { created_at: string; id: string }, b: { created_at: string; id: string }): number => {
    if (a.created_at !== b.created_at) return (a.created_at < b.created_at ? -1 : 1) * (newest ? -1 : 1);
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };

/**
 * Metrics samples by owner kind, with the repository's four methods written once: a backend gives `add` and
 * `list` for a kind ("proplet" or "task").
 */
export abstract class OwnerMetrics {
  protected abstract add(kind: "proplet" | "task", owner: string, at: string, sample: unknown): void;
  protected abstract list(kind: "proplet" | "task", owner: string, offset: number, limit: number): ListResult<unknown>;
  addProplet(id: string, at: string, sample: unknown): void {
    this.add("proplet", id, at, sample);
  }
  addTask(id: string, at: string, sample: unknown): void {
    this.add("task", id, at, sample);
  }
  listProplet(id: string, offset: number, limit: number): ListResult<unknown> {
    return this.list("proplet", id, offset, limit);
  }
  listTask(id: string, offset: number, limit: number): ListResult<unknown> {
    return this.list("task", id, offset, limit);
  }
}
