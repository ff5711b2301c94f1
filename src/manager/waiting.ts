import { describeRequirements, unmet } from "../core/requirements.ts";
import { TaskState } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import type { PropletRegistry } from "./proplets.ts";

// The waiting reason `GET /tasks/{id}` shows: read-only over the registry, it changes when placement rules do.

/** Why a Scheduled task has not started, in words for `GET /tasks/{id}` (undefined when it is not waiting). */
export function whyWaiting(task: Task, proplets: PropletRegistry, now = Date.now()): string | undefined {
  if (task.state !== TaskState.Scheduled) return undefined;
  if (task.retry_at && task.retry_at > now) return `a retry is due at ${new Date(task.retry_at).toISOString()}`;
  const alive = proplets.candidates(now);
  const pinned = task.pinned && task.proplet_id ? proplets.idOf(task.proplet_id) : undefined;
  const mine = pinned ? alive.filter((c) => c.id === pinned) : alive;
  const cordoned = proplets.cordonedAlive(now);
  if (pinned && mine.length === 0 && cordoned.some((p) => p.id === pinned)) {
    return `its proplet ${called(pinned, proplets)} is cordoned: it runs once the proplet is uncordoned`;
  }
  if (pinned && mine.length === 0) return `its proplet ${called(pinned, proplets)} is not alive`;
  const req = task.requirements;
  const able = req ? mine.filter((c) => !unmet(req, c.proplet.metadata, c.vouched)) : mine;
  if (able.length === 0 && req) {
    const why = mine.slice(0, 3).map((c) => `${c.proplet.name} lacks ${unmet(req, c.proplet.metadata, c.vouched)}`);
    return `no alive proplet meets its requirements (${describeRequirements(req)})${why.length ? `: ${why.join("; ")}` : ": none is alive"}; it runs when one joins`;
  }
  if (able.length === 0 && cordoned.length > 0) {
    // By name, as `proplets list` shows them and `proplets uncordon` takes them.
    const names = cordoned.slice(0, 5).map((p) => p.name);
    return `every alive proplet is cordoned (${names.join(", ")}${cordoned.length > 5 ? ", …" : ""}): it runs when one is uncordoned or joins`;
  }
  if (able.length === 0) return "no proplet is alive; it runs when one joins";
  return "every proplet that can run it is busy: it runs when a slot frees";
}

/** A proplet as an operator knows it: its name, and its id when that differs (a pin names either). */
function called(id: string, proplets: PropletRegistry): string {
  const name = proplets.get(id)?.name;
  return name && name !== id ? `${name} (${id})` : id;
}
