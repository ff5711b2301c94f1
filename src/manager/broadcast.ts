import { conflict } from "../core/errors.ts";
import { unmet } from "../core/requirements.ts";
import { isTerminal, STOPPED_BY_USER, stateName, TaskState } from "../core/states.ts";
import { CLIENT_FIELD_NAMES, newTask, type Task, TaskCreate } from "../core/task.ts";
import { nowIso, ZERO_TIME } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Dispatcher, StartResult } from "./dispatcher.ts";
import type { ManagerEvents } from "./events.ts";
import type { PropletRegistry } from "./proplets.ts";

const log = tag("manager");

// Broadcast (`broadcast: true`): a start runs the task on every alive proplet that meets its requirements. Each
// proplet's run is a part, an ordinary task pinned to it (so results, stops, timeouts, retries and lost proplets
// work as for any task); the broadcast task is Running until every part is final, records each part's end as one
// of its runs (results per proplet), and ends Completed with `{proplet: result}` or Failed naming where it failed.

export class Broadcasts {
  constructor(
    private store: Storage,
    private dispatcher: Dispatcher,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
  ) {
    events.taskFinal.subscribe((t) => {
      if (t.broadcast_of) this.settle(t.broadcast_of);
    });
    dispatcher.fanOut = this;
  }

  /** Called by the dispatcher once the task passed its checks (not running, has a module, dependencies met). */
  async start(task: Task): Promise<StartResult> {
    const req = task.requirements;
    const targets = this.proplets
      .candidates(Date.now())
      .filter((c) => !req || !unmet(req, c.proplet.metadata, c.vouched));
    if (targets.length === 0) {
      throw conflict(`no alive proplet${req ? " meets the task's requirements" : ""} to broadcast task ${task.id} to`);
    }
    const now = nowIso();
    const { id: _id, state: _s, results: _r, error: _e, parts: _p, ...base } = task;
    const parts = targets.map((c) => {
      const part = newTask(
        crypto.randomUUID(),
        TaskCreate.parse({ ...strip(base), broadcast: false, proplet_id: c.id }),
        now,
      );
      return { ...part, broadcast_of: task.id, metadata: { ...(task.metadata ?? {}), broadcast_of: task.id } };
    });
    for (const p of parts) this.store.tasks.create(p);
    const running: Task = {
      ...task,
      state: TaskState.Running,
      parts: parts.map((p) => p.id),
      start_time: now,
      finish_time: ZERO_TIME,
      results: undefined,
      error: undefined,
      updated_at: now,
    };
    this.store.tasks.update(running);
    this.events.taskChanged(running);
    for (const p of parts) await this.dispatcher.start(p.id);
    log.info(`task ${task.id} broadcast to ${parts.length} proplet(s)`);
    return { started: true, state: TaskState.Running, status: "Running" };
  }

  /** Stops every part still running; the broadcast task ends when they have. */
  async stop(task: Task): Promise<{ stopped: true }> {
    for (const id of task.parts ?? []) {
      const p = this.store.tasks.get(id);
      if (p && !isTerminal(p.state)) await this.dispatcher.stop(id).catch(() => {});
    }
    return { stopped: true };
  }

  /** After a restart: a broadcast whose parts all ended while the manager was down ends now. */
  recover(): void {
    for (const t of this.store.tasks.listByState([TaskState.Running])) if (t.parts) this.settle(t.id);
  }

  private settle(id: string): void {
    const task = this.store.tasks.get(id);
    if (!task || task.state !== TaskState.Running || !task.parts) return;
    const parts = task.parts.map((p) => this.store.tasks.get(p)).filter((p): p is Task => !!p);
    if (parts.some((p) => !isTerminal(p.state))) return;
    const now = nowIso();
    const name = (p: Task) => (p.proplet_id ? (this.proplets.get(p.proplet_id)?.name ?? p.proplet_id) : p.id);
    const results: Record<string, unknown> = {};
    for (const p of parts) {
      results[name(p)] = p.results ?? null;
      this.store.runs.create({
        run_id: p.run_id ?? p.id,
        task_id: task.id,
        attempt: 1,
        state: p.state,
        status: stateName(p.state),
        proplet_id: p.proplet_id,
        started_at: p.start_time,
        finished_at: p.finish_time,
        results: p.results,
        ...(p.error ? { error: p.error } : {}),
      });
    }
    const failed = parts.filter((p) => p.state !== TaskState.Completed);
    const stopped = failed.some((p) => p.error?.startsWith(STOPPED_BY_USER));
    const state = failed.length === 0 ? TaskState.Completed : stopped ? TaskState.Interrupted : TaskState.Failed;
    const error = failed.length
      ? `${stopped ? `${STOPPED_BY_USER}: ` : ""}not completed on ${failed.map((p) => `${name(p)} (${p.error ?? stateName(p.state)})`).join(", ")}`
      : undefined;
    const done: Task = { ...task, state, results, error, finish_time: now, updated_at: now };
    this.store.tasks.update(done);
    this.events.taskChanged(done);
    this.events.taskFinal.publish(done);
    log.info(`broadcast task ${id} ${stateName(state)} on ${parts.length} proplet(s)`);
  }
}

/** What a part does not take from its broadcast task: where and when it runs, and what it belongs to. */
const NOT_FOR_PARTS = new Set<string>([
  "proplet_id",
  "broadcast",
  "latent",
  "depends_on",
  "run_if",
  "workflow_id",
  "job_id",
  "schedule",
  "timezone",
  "is_recurring",
  "overlap_policy",
  "misfire_policy",
  "metadata",
]);

/** The fields a part takes from its broadcast task: what a client may set, nothing of its state. */
function strip(t: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of CLIENT_FIELD_NAMES) {
    if (!NOT_FOR_PARTS.has(k) && t[k] !== undefined && t[k] !== null) out[k] = t[k];
  }
  return out;
}
