import { currentRun, errorOf } from "../core/run.ts";
import { retryDelayMs } from "../core/scheduler.ts";
import { isTerminal, stateName, TaskState } from "../core/states.ts";
import { finished, type Task } from "../core/task.ts";
import { nowIso } from "../core/time.ts";
import { fields, tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Span } from "../telemetry/tracing.ts";
import type { ManagerEvents } from "./events.ts";
import type { PropletRegistry } from "./proplets.ts";
import type { RunControl, RunEnd } from "./run-control.ts";
import type { Timers } from "./timers.ts";

const log = tag("manager");

/** Stores a task, announcing a change of state on the event seam. */
export function saveTask(store: Storage, events: ManagerEvents, t: Task, prevState?: number): void {
  store.tasks.update(t);
  if (prevState !== undefined && prevState !== t.state) events.taskChanged(t);
}

/**
 * A run's end: its run record, the retry with backoff while retries remain, or the task's final state,
 * announced on the event seam (events.ts).
 */
export class RunEnds {
  /** With tracing on: each run's span, from dispatch to its end. */
  readonly spans = new Map<string, Span>();

  constructor(
    private store: Storage,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
    private timers: Timers,
    private ctl: Pick<RunControl, "enqueue" | "drain">,
  ) {}

  /**
   * Ends the current run. A failure with retries left schedules the next attempt after the backoff; anything
   * else is final and is announced as such.
   */
  end(task: Task, r: RunEnd): void {
    this.timers.clear(task.id);
    if (task.run_id && this.spans.size) {
      this.spans.get(task.run_id)?.end(errorOf(r.error));
      this.spans.delete(task.run_id);
    }
    const now = nowIso();
    const error = errorOf(r.error);
    const failed = error !== undefined;
    const state = r.state ?? (failed ? TaskState.Failed : TaskState.Completed);
    const wasRunning = task.state === TaskState.Running;
    if (task.run_id && wasRunning) this.recordRun(task, state, now, r.results, error, !r.fromProplet);
    if (task.proplet_id && wasRunning) this.proplets.track(task.proplet_id, task.id, false);
    const attempt = task.attempt ?? 1;
    if (failed && !r.final && state === TaskState.Failed && attempt <= (task.max_retries ?? 0)) {
      const delay = retryDelayMs(task.retry_backoff_s ?? 1, attempt);
      const retryAt = Date.now() + delay;
      const retry = { ...task, state: TaskState.Scheduled, attempt: attempt + 1, results: r.results, error };
      saveTask(this.store, this.events, { ...retry, finish_time: now, updated_at: now, retry_at: retryAt }, task.state);
      log.warn(
        `run failed (${r.error}); retry ${attempt + 1} in ${delay / 1000}s`,
        fields({ task_id: task.id, run_id: task.run_id, proplet_id: task.proplet_id, attempt }),
      );
      this.retryLater(task.id, delay);
    } else {
      const done = finished(task, state, r.results, error, now);
      saveTask(this.store, this.events, done, task.state);
      // A failed task is something an operator looks for (`journalctl -p warning`): warn, not info.
      const about = fields({ task_id: task.id, run_id: task.run_id, proplet_id: task.proplet_id });
      if (state === TaskState.Failed) log.warn(`task failed: ${done.error}`, about);
      else log.debug(`task ${stateName(state)}`, about);
      if (isTerminal(state)) this.events.taskFinal.publish(done);
    }
    this.ctl.drain();
  }

  /** Stores the run that ended and announces it. */
  private recordRun(
    task: Task,
    state: number,
    at: string,
    results: unknown,
    error: string | undefined,
    settled: boolean,
  ): void {
    const run = {
      ...currentRun(task),
      state,
      status: stateName(state),
      finished_at: at,
      results,
      ...(error ? { error } : {}),
      ...(settled ? { settled: true } : {}),
    };
    this.store.runs.create(run);
    this.events.runEnd(task, run);
  }

  /** The next attempt of a failed run, queued again once its backoff is over. */
  retryLater(id: string, delayMs: number): void {
    this.timers.set(id, delayMs, () => {
      const t = this.store.tasks.get(id);
      if (t?.state === TaskState.Scheduled && t.retry_at) this.ctl.enqueue(t);
    });
  }
}
