// Proplet selection policies: pure functions over the alive candidates.

export interface Candidate {
  id: string;
}

/**
 * Round robin: the candidate after the one chosen last time (by id, so a changing list order does not
 * skew the rotation). Upstream's first pick is index 1; ours is the first candidate.
 */
export function roundRobin<T extends Candidate>(candidates: readonly T[], lastId: string | undefined): T | undefined {
  if (candidates.length === 0) return undefined;
  const sorted = [...candidates].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (lastId === undefined) return sorted[0];
  return sorted.find((c) => c.id > lastId) ?? sorted[0];
}

export interface Placeable extends Candidate {
  running: number;
  /** Concurrent tasks the proplet accepts; Infinity when it did not say. */
  capacity: number;
}

export type SchedulerName = "round-robin" | "priority" | "least-loaded";
export const SCHEDULERS: SchedulerName[] = ["round-robin", "priority", "least-loaded"];

const free = (p: Placeable) => p.capacity - p.running;

/** Least loaded: the most free slots relative to capacity, ties by fewest running, then id. */
export function leastLoaded<T extends Placeable>(candidates: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const c of candidates) {
    if (free(c) <= 0) continue;
    const load = Number.isFinite(c.capacity) ? c.running / c.capacity : 0;
    const bestLoad = best ? (Number.isFinite(best.capacity) ? best.running / best.capacity : 0) : Infinity;
    if (
      !best ||
      load < bestLoad ||
      (load === bestLoad && (c.running < best.running || (c.running === best.running && c.id < best.id)))
    )
      best = c;
  }
  return best;
}

/** Picks a proplet with a free slot under the named policy. */
export function place<T extends Placeable>(
  policy: SchedulerName,
  candidates: readonly T[],
  lastId: string | undefined,
): T | undefined {
  const open = candidates.filter((c) => free(c) > 0);
  return policy === "round-robin" ? roundRobin(open, lastId) : leastLoaded(open);
}

export interface Queued {
  id: string;
  priority: number;
  /** ms since the epoch when the task entered the queue. */
  queuedAt: number;
}

/** Queue order: higher priority first, then the oldest. */
export function queueOrder(a: Queued, b: Queued): number {
  return b.priority - a.priority || a.queuedAt - b.queuedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Exponential retry backoff: base, doubling per attempt, capped. */
export function retryDelayMs(baseS: number, attempt: number, capS = 300): number {
  return Math.min(baseS * 2 ** Math.max(0, attempt - 1), capS) * 1000;
}
