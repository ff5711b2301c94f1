import type { Experiment, Round } from "../core/fl-experiment.ts";
import type { Storage } from "../storage/repository.ts";
import type { PropletRegistry } from "./proplets.ts";

// Looks the coordinator (fl.ts) takes at a round: why its participants' tasks sent nothing, whether they are
// heard again after a restart, and whether what they sent can be aggregated.

/** Why the round's tasks that sent nothing failed, as "; edge-1: …" (two at most): the round's error says it. */
export function taskErrors(r: Round, store: Storage, proplets: PropletRegistry): string {
  const said = Object.entries(r.tasks)
    .filter(([proplet]) => !r.updates.some((u) => u.proplet_id === proplet))
    .map(([proplet, id]) => [proplet, store.tasks.get(id)?.error] as const)
    .filter(([, error]) => error)
    .slice(0, 2)
    .map(([proplet, error]) => `${proplets.get(proplet)?.name ?? proplet}: ${error!.slice(0, 300)}`);
  return said.length ? `; ${said.join("; ")}` : "";
}

/**
 * Soon after a restart, waits (until `until` at most: the manager's start and the liveness threshold) for every
 * participant to be heard again: a round overdue at the restart closed at once, and the next one failed for "only
 * 0 of 2 participants are alive" while they were still reconnecting.
 */
export async function participantsHeard(e: Experiment, proplets: PropletRegistry, until: number): Promise<void> {
  const alive = (id: string) => {
    const p = proplets.get(id);
    return p !== undefined && proplets.alive(p);
  };
  while (Date.now() < until && e.state === "running" && !e.participants.every(alive)) await Bun.sleep(250);
}

/**
 * Why a round that gathered its updates cannot be aggregated: not one sample trained on (no dataset stored for any
 * participant, say). An average of nothing is no model: the round was "completed" with loss 0 and accuracy 0, and a
 * new model version made of the one before.
 */
export function noSamples(r: Round): string | undefined {
  if (r.updates.length === 0 || r.updates.some((u) => u.num_samples > 0)) return undefined;
  return "no participant trained on any sample (every update has num_samples 0): store each one's data first (propeller fl datasets NAME --upload FILE)";
}
