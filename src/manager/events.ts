import type { ManagerEvent, TrustStep } from "../core/events.ts";
import { type Experiment, type Round, roundEvent } from "../core/fl-experiment.ts";
import type { Run } from "../core/run.ts";
import { stateName } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import { nowIso } from "../core/time.ts";
import type { TrustDecision } from "../core/trust-policy.ts";
import { fields, tag } from "../log.ts";

const log = tag("manager");

// The one seam between the manager's rooms. The dispatcher announces what happened to runs and tasks; groups,
// schedules, telemetry and the live stream subscribe. Delivery is deferred to a microtask, so a subscriber never
// runs while the publisher's use case is still on the stack (no re-entry), and everything it writes still lands
// in the same group commit (storage commits on setImmediate, after microtasks).

export class Channel<T> {
  private subs = new Set<(e: T) => void>();
  /** The subscribers as an array, made again only when they change (publishing copies nothing). */
  private snapshot: ((e: T) => void)[] = [];
  /** Events published and not yet delivered, each with the subscribers there were when it was published. */
  private pending: [T, ((e: T) => void)[]][] = [];

  get listeners(): number {
    return this.subs.size;
  }

  subscribe(fn: (e: T) => void): () => void {
    this.subs.add(fn);
    this.snapshot = [...this.subs];
    return () => {
      this.subs.delete(fn);
      this.snapshot = [...this.subs];
    };
  }

  publish(e: T): void {
    if (this.subs.size === 0) return;
    // One microtask for every event published before it runs (a task's way publishes several), in order.
    if (this.pending.push([e, this.snapshot]) === 1) queueMicrotask(() => this.deliver());
  }

  private deliver(): void {
    // An event a subscriber publishes while this runs is delivered here too, after the ones before it.
    for (let i = 0; i < this.pending.length; i++) {
      const [e, subs] = this.pending[i]!;
      for (const fn of subs) {
        try {
          fn(e);
        } catch {
          // A broken subscriber (a closed stream) must not break the manager or the other subscribers.
        }
      }
    }
    this.pending = [];
  }
}

export interface RunStarted {
  task: Task;
  run_id: string;
}

export interface RunEnded {
  task: Task;
  run: Run;
}

export class ManagerEvents {
  /** Live events for `GET /events`, `propeller watch` and the console. */
  readonly live = new Channel<ManagerEvent>();
  /** A run was sent to a proplet. */
  readonly runStarted = new Channel<RunStarted>();
  /** A run ended, whatever its outcome; a retry may follow. */
  readonly runEnded = new Channel<RunEnded>();
  /** A task reached a final state (Completed, Failed, Skipped, Interrupted): no retry follows. */
  readonly taskFinal = new Channel<Task>();

  /** A run was sent to a proplet. */
  runStart(task: Task, runId: string, at: string): void {
    this.runStarted.publish({ task, run_id: runId });
    if (this.live.listeners === 0) return;
    const { id, attempt, proplet_id } = task;
    this.live.publish({
      type: "run",
      phase: "started",
      task_id: id,
      run_id: runId,
      attempt: attempt ?? 1,
      proplet_id,
      at,
    });
  }

  /** A run ended (it is stored by then). */
  runEnd(task: Task, run: Run): void {
    this.runEnded.publish({ task, run });
    if (this.live.listeners === 0) return;
    const { run_id, attempt, proplet_id, state, status, error } = run;
    this.live.publish({
      type: "run",
      phase: "ended",
      task_id: task.id,
      ...{ run_id, attempt, proplet_id, state, status },
      ...(error ? { error } : {}),
      at: run.finished_at ?? nowIso(),
    });
  }

  /** A federated-learning round started, took an update or ended. */
  flRound(e: Experiment, r: Round): void {
    if (this.live.listeners === 0) return;
    this.live.publish(roundEvent(e, r, nowIso()));
  }

  /** The trust policy refused a module: logged (the audit trail that outlives the stream) and told to listeners. */
  trustRefused(step: TrustStep, module: string, c: TrustDecision, taskId?: string): void {
    log.warn(`trust policy refused ${module} at ${step}: ${c.reason}`, fields({ rule: c.rule, task_id: taskId }));
    if (this.live.listeners === 0) return;
    this.live.publish({
      type: "trust",
      at_step: step,
      ...(taskId ? { task_id: taskId } : {}),
      module,
      rule: c.rule,
      scope: c.scope,
      reason: c.reason,
      at: nowIso(),
    });
  }

  /** Tells live listeners about a task's state; nothing is built when nobody listens. */
  taskChanged(t: Task): void {
    if (this.live.listeners === 0) return;
    this.live.publish({
      type: "task",
      task_id: t.id,
      name: t.name,
      state: t.state,
      status: stateName(t.state),
      ...(t.proplet_id ? { proplet_id: t.proplet_id } : {}),
      ...(t.error ? { error: t.error } : {}),
      at: nowIso(),
    });
  }
}
