import { conflict, invalid, notFound, stopping } from "../core/errors.ts";
import { parentResults, type ResultMsg, startMessage } from "../core/messages.ts";
import type { Proplet } from "../core/proplet.ts";
import type { SchedulerName } from "../core/scheduler.ts";
import { INTERRUPTED_BY_SHUTDOWN, isTerminal, STOPPED_BY_USER, stateName, TaskState } from "../core/states.ts";
import { runningOn, type Task } from "../core/task.ts";
import { nowIso } from "../core/time.ts";
import { formatTraceparent } from "../core/traceparent.ts";
import { fields, tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import { SpanKind, tracing } from "../telemetry/tracing.ts";
import type { ManagerEvents } from "./events.ts";
import { ExtraRuns } from "./extra-runs.ts";
import { LostRuns } from "./lost-runs.ts";
import { Placement } from "./placement.ts";
import type { PropletRegistry } from "./proplets.ts";
import { RunResults } from "./results.ts";
import { type ManagerBus, publishFailed, type RunControl, type RunEnd, type RunFence } from "./run-control.ts";
import { RunEnds, saveTask } from "./run-end.ts";
import { RunStops } from "./run-stops.ts";
import { Timers } from "./timers.ts";
import { whyWaiting } from "./waiting.ts";

export type { ManagerBus } from "./run-control.ts";

const log = tag("manager");

// The dispatcher owns a task's way from "start" to its final state: the queue, placement on proplets, runs,
// timeouts, retries with backoff, results, and settling runs on proplets that went silent. It announces every run
// start and end, and every final state, on the event seam (events.ts); it calls no other room.
//
// A start puts the task in the queue (Scheduled); the queue drains by priority onto alive proplets with a free
// slot. Every dispatch is a run. A failed run is retried with exponential backoff while retries remain. Tasks on
// a proplet that is lost, or that stops listing them in its heartbeat, are settled; nothing stays Running forever.
//
// This file keeps start, the queue and placement; its helper rooms take what they need (run-control.ts):
// run-end.ts ends a run (record, retry, final state), run-stops.ts stops runs, results.ts fences proplets'
// results by run, lost-runs.ts settles lost and timed-out runs, extra-runs.ts runs beside a task's current one,
// waiting.ts the waiting reason.

export type StartResult = { started: true; state: number; status: string };

export class Dispatcher {
  private placement: Placement;
  private timers = new Timers();
  private fence: RunFence = { stopping: new Map(), unconfirmed: new Set(), asked: new Map() };
  private shuttingDown = false;
  /**
   * Broadcast tasks' fan-out (src/manager/broadcast.ts), set by that room: it calls back into start and stop
   * for each part, so the dispatcher only hands the whole task over.
   */
  fanOut?: { start(task: Task): Promise<StartResult>; stop(task: Task): Promise<{ stopped: true }> };
  private ends: RunEnds;
  private extras: ExtraRuns;
  private results: RunResults;
  private lost: LostRuns;
  private stops: RunStops;

  constructor(
    private store: Storage,
    private bus: ManagerBus,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
    scheduler: SchedulerName,
  ) {
    this.placement = new Placement(scheduler);
    const ctl: RunControl = {
      endRun: (t, r) => this.endRun(t, r),
      enqueue: (t) => this.enqueue(t),
      drain: () => this.drain(),
      sendStop: (id, p) => this.sendStop(id, p),
      askAgain: (t) => this.redeploy(t, t.start_time),
    };
    this.ends = new RunEnds(store, proplets, events, this.timers, ctl);
    this.extras = new ExtraRuns(store, bus, proplets, ctl);
    this.results = new RunResults(store, this.extras, ctl, this.fence);
    this.lost = new LostRuns(store, proplets, this.extras, this.timers, ctl, this.fence);
    this.stops = new RunStops(store, bus, proplets, this.fence, { ...ctl, forget: (id) => this.forget(id) });
  }

  get queueDepth(): number {
    return this.placement.size;
  }

  /**
   * Rebuilds the queue, retry timers and running sets from storage after a start or a crash. With `takeover`
   * (this manager took over from one that died), a run its proplet neither lists nor answers was started in the
   * store but its start message never left the dead manager: it is started again, not failed. (Results cannot be
   * lost in a hand-over: the site's shared MQTT session keeps them until they are committed.)
   */
  recover(now = Date.now(), takeover = false): void {
    // One scan of the unfinished tasks (there is no index on state: it would cost every task update).
    for (const t of this.store.tasks.listByState([TaskState.Running, TaskState.Scheduled, TaskState.Interrupted])) {
      if (t.state === TaskState.Running) {
        if (t.proplet_id) this.proplets.track(t.proplet_id, t.id, true);
        if (takeover) this.fence.unconfirmed.add(t.id);
      } else if (t.state === TaskState.Interrupted) {
        // Only a shutdown's: a task a user stopped stays as it is.
        if (t.error === INTERRUPTED_BY_SHUTDOWN) this.endRun(t, { error: INTERRUPTED_BY_SHUTDOWN, results: t.results });
      } else if (t.retry_at && t.retry_at > now) this.ends.retryLater(t.id, t.retry_at - now);
      else this.placement.add(t, t.queued_at ?? now);
    }
    this.drain();
  }

  /**
   * After a failed commit (a full disk): the running sets again from the store, so that a run whose end was lost
   * with the commit is on its proplet's books again and asked about (lost-runs.ts), not left Running for good.
   */
  resyncRunning(): void {
    for (const t of this.store.tasks.listByState([TaskState.Running]))
      if (t.proplet_id) this.proplets.track(t.proplet_id, t.id, true);
  }

  private save(t: Task, prevState?: number): void {
    saveTask(this.store, this.events, t, prevState);
  }

  private mustGet(id: string): Task {
    const t = this.store.tasks.get(id);
    if (!t) throw notFound(`task ${id} not found`);
    return t;
  }

  /** Why a Scheduled task has not started, in words for `GET /tasks/{id}` (undefined when it is not waiting). */
  whyWaiting(task: Task, now = Date.now()): string | undefined {
    return whyWaiting(task, this.proplets, now);
  }

  /** The name of a known proplet (its identity's, for a provisioned one). */
  propletName(id: string): string | undefined {
    return this.proplets.get(id)?.name;
  }

  /** The id of the proplet a key names by id or name; the key itself when none does. */
  propletIdOf(key: string): string {
    return this.proplets.idOf(key);
  }

  /** For a Running task on a proplet that is not heard from: its last heartbeat. */
  unreachableSince(task: Task): string | undefined {
    if (task.state !== TaskState.Running || !task.proplet_id) return undefined;
    return this.proplets.unreachableSince(task.proplet_id);
  }

  async start(id: string): Promise<StartResult> {
    // 503, not 409: the start was not done, and the manager that comes next (a stand-by, a restart) will do it.
    if (this.shuttingDown) throw stopping("the manager is shutting down: try again");
    const task = this.mustGet(id);
    if (task.state === TaskState.Running || task.state === TaskState.Scheduled)
      throw conflict(`task ${id} is already ${stateName(task.state)}`);
    if (!task.file && !task.image_url) throw invalid(`task ${id} has no module: set file, image_url or upload a .wasm`);
    if (task.pinned && task.proplet_id && !this.proplets.byIdOrName(task.proplet_id))
      throw notFound(`proplet ${task.proplet_id} (pinned by the task) not found`);
    const unmet = this.unmetDependencies(task);
    if (unmet.length) throw conflict(`task ${id} has unmet dependencies: waiting for ${unmet.join(", ")}`);
    // A broadcast runs as parts, whoever starts it (a user, a cron firing, a workflow).
    if (task.broadcast && this.fanOut) return this.fanOut.start(task);
    const state = this.enqueue({ ...task, attempt: 1, error: undefined, results: undefined });
    await this.store.durable();
    return { started: true, state, status: stateName(state) };
  }

  /** Missing parents, or parents not yet final, mean the task must wait for its job or workflow. */
  private unmetDependencies(t: Task): string[] {
    return (t.depends_on ?? []).filter((d) => {
      const p = this.store.tasks.get(d);
      return !p || !isTerminal(p.state);
    });
  }

  /** Queues the task and tries to place it at once; only a task left waiting is stored as Scheduled. */
  private enqueue(task: Task): number {
    const queuedAt = Date.now();
    const t: Task = {
      ...pinById(task, this.proplets),
      state: TaskState.Scheduled,
      queued_at: queuedAt,
      retry_at: undefined,
      updated_at: nowIso(),
    };
    this.placement.add(t, queuedAt);
    this.drain();
    if (!this.placement.has(t.id)) return TaskState.Running;
    this.save(t, task.state);
    return TaskState.Scheduled;
  }

  /** A queued task was edited: its place in the queue follows its new priority. */
  requeue(task: Task): void {
    this.placement.update(pinById(task, this.proplets));
  }

  /** The task is being deleted: it leaves the queue and its timers. */
  forget(id: string): void {
    this.placement.delete(id);
    this.timers.clear(id);
  }

  /**
   * The task is being deleted while it runs: the proplet is told to stop, and its slot is free at once (no
   * result will ever be accepted for a deleted task), so the queue moves on.
   */
  async release(task: Task): Promise<void> {
    this.forget(task.id);
    this.extras.stopFor(task.id);
    if (task.state !== TaskState.Running || !task.proplet_id) return;
    const p = this.proplets.get(task.proplet_id);
    if (p && this.proplets.alive(p)) await this.sendStop(task.id, p.id);
    this.proplets.track(task.proplet_id, task.id, false);
    queueMicrotask(() => this.drain());
  }

  /** Places queued tasks on proplets with free slots (none while shutting down). */
  drain(): void {
    if (this.placement.size === 0 || this.shuttingDown) return;
    this.placement.drain(this.proplets.candidates(Date.now()), (task, proplet) => this.dispatch(task, proplet));
  }

  private dispatch(task: Task, proplet: Proplet): void {
    const now = nowIso();
    const runId = crypto.randomUUID();
    const running = runningOn(task, proplet.id, runId, now);
    this.save(running, task.state);
    this.proplets.track(proplet.id, task.id, true);
    this.events.runStart(running, runId, now);
    // A latent task's run is its deployment, idle between invocations: its timeout_s bounds each invocation (the
    // proplet's), not how long it stays deployed (it failed "timed out" while idle, and the next invoke was 409).
    if (task.timeout_s && !task.latent) this.lost.watchTimeout(task.id, runId, task.timeout_s);
    const msg = startMessage(
      running,
      parentResults(running, (d) => this.store.tasks.get(d)),
    );
    // Off (the default), nothing is built for a span on this hot path.
    const t = tracing();
    const span = t.enabled
      ? t.start(`dispatch ${task.name}`, SpanKind.producer, undefined, {
          "propeller.task_id": task.id,
          "propeller.run_id": runId,
          "propeller.proplet_id": proplet.id,
        })
      : undefined;
    if (span) {
      msg.traceparent = formatTraceparent(span.context);
      this.ends.spans.set(runId, span);
    }
    // Running is committed before the proplet hears of the task: a crash in between cannot lose a run.
    void this.store
      .durable()
      .then(() => this.bus.start(msg))
      .then(() => log.debug("run started", fields({ task_id: task.id, run_id: runId, proplet_id: proplet.id })))
      .catch((e) => {
        const t = this.store.tasks.get(task.id);
        const error = publishFailed(e);
        if (t?.run_id === runId && t.state === TaskState.Running) this.endRun(t, { error, results: undefined });
      });
  }

  /**
   * Starts one more run of a Running task at once, beside its current one, on a proplet with a free slot that
   * meets its requirements (the current run's own proplet too, which runs both). False when none has a slot.
   */
  startExtra(id: string): boolean {
    return !this.shuttingDown && this.extras.start(id);
  }

  /**
   * The current run's start again, same run id: a latent task's proplet lost its deployment (a restart); or, with
   * `sentAgain` (the run's start time), a proplet with a run record is asked about a run it no longer lists.
   */
  redeploy(task: Task, sentAgain?: string): Promise<void> {
    const msg = startMessage(
      task,
      parentResults(task, (d) => this.store.tasks.get(d)),
    );
    return this.bus.start(sentAgain ? { ...msg, sent_again: sentAgain, sent_at: nowIso() } : msg);
  }

  /** A stop that may go unheard (the proplet gone, the broker down): nothing waits on it failing. */
  private sendStop(id: string, propletId: string | undefined): Promise<void> {
    return this.bus.stop({ id, broadcast: false, proplet_id: propletId }).catch(() => {});
  }

  /**
   * Stops a task's run (run-stops.ts). By a user (or with a `reason`: an FL round that closed), it ends Interrupted
   * saying so; else (a job failing fast) it ends as a stopped run.
   */
  async stop(id: string, byUser = true, reason?: string): Promise<{ stopped: true }> {
    const task = this.mustGet(id);
    this.extras.stopFor(id);
    if (task.parts && task.state === TaskState.Running && this.fanOut) return this.fanOut.stop(task);
    await this.stops.stop(task, reason ?? (byUser ? STOPPED_BY_USER : undefined));
    return { stopped: true };
  }

  /**
   * Marks a not-yet-run task Skipped (its job failed, or its workflow branch is not taken), or with `state`
   * Interrupted (its group was stopped by a user).
   */
  skip(id: string, reason: string, state: number = TaskState.Skipped): void {
    const t = this.store.tasks.get(id);
    if (!t || (t.state !== TaskState.Pending && t.state !== TaskState.Scheduled)) return;
    this.forget(id);
    const skipped = { ...t, state, error: reason, updated_at: nowIso() };
    this.save({ ...skipped, queued_at: undefined, retry_at: undefined }, t.state);
    log.info(`task ${stateName(state).toLowerCase()}: ${reason}`, fields({ task_id: id }));
  }

  /** A task of a group run again waits again (Pending; its runs stay in its history). */
  reset(id: string): Task | undefined {
    const t = this.store.tasks.get(id);
    if (!t || !isTerminal(t.state)) return t;
    const again = { ...t, state: TaskState.Pending, error: undefined, results: undefined, updated_at: nowIso() };
    this.save(again, t.state);
    return again;
  }

  /** Ends the current run (run-end.ts): a retry after the backoff while retries remain, else the final state. */
  private endRun(task: Task, r: RunEnd): void {
    this.ends.end(task, r);
  }

  /** A proplet's result for the run it is running (results.ts fences it by run). */
  onResult(msg: ResultMsg): void {
    this.results.onResult(msg);
  }

  /**
   * Settles the runs a proplet no longer has ("proplet lost"), retried where retries remain; with `keep` (the
   * tasks a heartbeat lists), only the others, and only once their start had time to arrive (lost-runs.ts).
   */
  settleLost(...args: Parameters<LostRuns["settle"]>): void {
    this.lost.settle(...args);
  }

  /** Graceful shutdown: running tasks are stopped and marked Interrupted, as upstream (run-stops.ts). */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.timers.clearAll();
    await this.stops.shutdown();
  }
}

/** A task pinned by a proplet's name (as a person writes it) is queued and stored pinned by that proplet's id. */
function pinById(task: Task, proplets: PropletRegistry): Task {
  if (!task.pinned || !task.proplet_id) return task;
  const id = proplets.idOf(task.proplet_id);
  return id === task.proplet_id ? task : { ...task, proplet_id: id };
}
