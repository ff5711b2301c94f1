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
