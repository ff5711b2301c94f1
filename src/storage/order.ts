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

/**
 * The same page read from whichever end of an index is nearer. An OFFSET makes SQL step over every skipped row, so
 * the last page of 100,000 tasks newest-first costs a walk over 99,900 index entries; read from the oldest end it is
 * the first 100. `reverse` says to walk the other way and reverse the rows read.
 */
export function nearerEnd(
  total: number,
  offset: number,
  limit: number,
): { reverse: boolean; offset: number; limit: number } {
  const end = Math.min(total, offset + limit);
  if (offset >= total || offset <= total - end) return { reverse: false, offset, limit };
  return { reverse: true, offset: total - end, limit: end - offset };
}
