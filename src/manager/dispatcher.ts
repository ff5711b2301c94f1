import { AppError, conflict, invalid, notFound } from "../core/errors.ts";
import {
  type InvokeMsg,
  parentResults,
  type ResultMsg,
  type StartMsg,
  type StopMsg,
  startMessage,
} from "../core/messages.ts";
import type { Proplet } from "../core/proplet.ts";
import { canHost, describeRequirements, unmet } from "../core/requirements.ts";
import { currentRun, errorOf, type Run, withOutcome } from "../core/run.ts";
import { leastLoaded, retryDelayMs, type SchedulerName } from "../core/scheduler.ts";
import { INTERRUPTED_BY_SHUTDOWN, isTerminal, STOPPED_BY_USER, stateName, TaskState } from "../core/states.ts";
import { finished, runningOn, type Task } from "../core/task.ts";
import { nowIso } from "../core/time.ts";
import { formatTraceparent } from "../core/traceparent.ts";
import { fields, tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import { type Span, SpanKind, tracing } from "../telemetry/tracing.ts";
import type { ManagerEvents } from "./events.ts";
import { Placement } from "./placement.ts";
import type { PropletRegistry } from "./proplets.ts";
import { Timers } from "./timers.ts";

const log = tag("manager");

// The dispatcher owns a task's way from "start" to its final state: the queue, placement on proplets, runs,
// timeouts, retries with backoff, results, and settling runs on proplets that went silent. It announces every run
// start and end, and every final state, on the event seam (events.ts); it calls no other room.
//
// A start puts the task in the queue (Scheduled); the queue drains by priority onto alive proplets with a free
// slot. Every dispatch is a run. A failed run is retried with exponential backoff while retries remain. Tasks on
// a proplet that is lost, or that stops listing them in its heartbeat, are settled; nothing stays Running forever.

/** The port to the proplets: what the dispatcher publishes. MQTT in `serve`, a recorder in unit tests. */
export interface ManagerBus {
  start(msg: StartMsg): Promise<void>;
  stop(msg: StopMsg): Promise<void>;
  invoke(msg: InvokeMsg): Promise<void>;
}

export type StartResult = { started: true; state: number; status: string };

/** A heartbeat that omits a task started this long ago means the proplet no longer runs it. */
const HEARTBEAT_GRACE_MS = 3000;
/** Extra time the manager gives a proplet to report a timed-out run before settling it itself. */
const TIMEOUT_GRACE_MS = 5000;

interface RunEnd {
  results: unknown;
  error?: string | null;
  /** The proplet's own result ended it (else the manager settled it: lost, timed out, …). */
  fromProplet?: boolean;
  /** No retry, whatever the retries left (a stop, a shutdown). */
  final?: boolean;
  state?: number;
}

export class Dispatcher {
  private placement: Placement;
  private timers = new Timers();
  /** Tasks whose stop was sent, and whether a user asked: their "task stopped" result ends the retry series. */
  private stopping = new Map<string, boolean>();
  private shuttingDown = false;
  /** Runs found Running at a takeover, until their proplet lists them or answers (see `recover`). */
  private unconfirmed = new Set<string>();
  /**
   * Broadcast tasks' fan-out (src/manager/broadcast.ts), set by that room: it calls back into start and stop
   * for each part, so the dispatcher only hands the whole task over.
   */
  fanOut?: { start(task: Task): Promise<StartResult>; stop(task: Task): Promise<{ stopped: true }> };
  /** With tracing on: each run's span, from dispatch to its end. */
  private runSpans = new Map<string, Span>();
  /**
   * Runs of a task beside its current one, by run id: a cron firing under `overlap_policy: allow` that found the
   * task running starts one at once. Its run record is stored Running when it starts and completed by its own
   * result (fenced by run id); the task's state follows its current run only.
   */
  private extraRuns = new Map<string, { task: string; proplet: string; startedAt: number }>();

  constructor(
    private store: Storage,
    private bus: ManagerBus,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
    scheduler: SchedulerName,
  ) {
    this.placement = new Placement(scheduler);
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
        if (takeover) this.unconfirmed.add(t.id);
      } else if (t.state === TaskState.Interrupted) {
        // Only a shutdown's: a task a user stopped stays as it is.
        if (t.error === INTERRUPTED_BY_SHUTDOWN) this.endRun(t, { error: INTERRUPTED_BY_SHUTDOWN, results: t.results });
      } else if (t.retry_at && t.retry_at > now) this.retryLater(t.id, t.retry_at - now);
      else this.placement.add(t, t.queued_at ?? now);
    }
    this.drain();
  }

  private save(t: Task, prevState?: number): void {
    this.store.tasks.update(t);
    if (prevState !== undefined && prevState !== t.state) this.events.taskChanged(t);
  }

  private mustGet(id: string): Task {
    const t = this.store.tasks.get(id);
    if (!t) throw notFound(`task ${id} not found`);
    return t;
  }

  /** Queues the task; it runs as soon as a proplet has a free slot. */
  /** Why a Scheduled task has not started, in words for `GET /tasks/{id}` (undefined when it is not waiting). */
  whyWaiting(task: Task, now = Date.now()): string | undefined {
    if (task.state !== TaskState.Scheduled) return undefined;
    if (task.retry_at && task.retry_at > now) return `a retry is due at ${new Date(task.retry_at).toISOString()}`;
    const alive = this.proplets.candidates(now);
    const pinned = task.pinned && task.proplet_id ? this.proplets.idOf(task.proplet_id) : undefined;
    const mine = pinned ? alive.filter((c) => c.id === pinned) : alive;
    const cordoned = this.proplets.cordonedAlive(now).map((p) => p.id);
    if (pinned && mine.length === 0 && cordoned.includes(pinned)) {
      return `its proplet ${pinned} is cordoned: it runs once the proplet is uncordoned`;
    }
    if (pinned && mine.length === 0) return `its proplet ${pinned} is not alive`;
    const req = task.requirements;
    const able = req ? mine.filter((c) => !unmet(req, c.proplet.metadata, c.vouched)) : mine;
    if (able.length === 0 && req) {
      const why = mine.slice(0, 3).map((c) => `${c.proplet.name} lacks ${unmet(req, c.proplet.metadata, c.vouched)}`);
      return `no alive proplet meets its requirements (${describeRequirements(req)})${why.length ? `: ${why.join("; ")}` : ": none is alive"}; it runs when one joins`;
    }
    if (able.length === 0 && cordoned.length > 0) {
      return `every alive proplet is cordoned (${cordoned.slice(0, 5).join(", ")}): it runs when one is uncordoned or joins`;
    }
    if (able.length === 0) return "no proplet is alive; it runs when one joins";
    return "every proplet that can run it is busy: it runs when a slot frees";
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
    if (this.shuttingDown) throw conflict("the manager is shutting down");
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
    this.stopExtras(task.id);
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
    if (task.timeout_s) this.watchTimeout(task.id, runId, task.timeout_s);
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
      this.runSpans.set(runId, span);
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
    const task = this.store.tasks.get(id);
    if (!task || task.state !== TaskState.Running || this.shuttingDown) return false;
    const able = this.proplets
      .candidates(Date.now())
      // Only a proplet that tells runs apart: an upstream one would mix the two runs' results.
      .filter((c) => canHost(task, c.proplet, c.vouched) && c.proplet.metadata.run_ids === true);
    const chosen = leastLoaded(able);
    if (!chosen) return false;
    const now = nowIso();
    const runId = crypto.randomUUID();
    const run: Run = {
      run_id: runId,
      task_id: id,
      attempt: 1,
      state: TaskState.Running,
      status: "Running",
      proplet_id: chosen.id,
      started_at: now,
    };
    this.store.runs.create(run);
    this.extraRuns.set(runId, { task: id, proplet: chosen.id, startedAt: Date.now() });
    this.proplets.trackExtra(chosen.id, runId, true);
    const msg = startMessage(
      { ...task, proplet_id: chosen.id, run_id: runId, attempt: 1 },
      parentResults(task, (d) => this.store.tasks.get(d)),
    );
    void this.store
      .durable()
      .then(() => this.bus.start(msg))
      .catch((e) => this.endExtra(runId, undefined, publishFailed(e), true));
    log.info("run started beside the current one", fields({ task_id: id, run_id: runId, proplet_id: chosen.id }));
    return true;
  }

  /** Ends a run started by `startExtra`: its own result, or settled by the manager (`settled`). */
  private endExtra(runId: string, results: unknown, error: string | null | undefined, settled = false): void {
    const extra = this.extraRuns.get(runId);
    if (!extra) return;
    this.extraRuns.delete(runId);
    this.proplets.trackExtra(extra.proplet, runId, false);
    const stored = this.store.runs.get(extra.task, runId);
    if (stored) {
      const ended = { ...withOutcome(stored, results, error), finished_at: nowIso() };
      this.store.runs.update(settled ? { ...ended, settled: true } : ended);
    }
    this.drain();
  }

  /** Stops the runs started beside a task's current one (the task is stopped or deleted). */
  private stopExtras(taskId: string): void {
    for (const [runId, e] of this.extraRuns) {
      if (e.task !== taskId) continue;
      const p = this.proplets.get(e.proplet);
      if (p && this.proplets.alive(p)) void this.sendStop(taskId, e.proplet);
      else this.endExtra(runId, undefined, `${STOPPED_BY_USER} (its proplet is not alive)`, true);
    }
  }

  /** A latent task's proplet lost its deployment (a restart): the current run's start goes to it again. */
  redeploy(task: Task): Promise<void> {
    return this.bus.start(
      startMessage(
        task,
        parentResults(task, (d) => this.store.tasks.get(d)),
      ),
    );
  }

  /** A stop that may go unheard (the proplet gone, the broker down): nothing waits on it failing. */
  private sendStop(id: string, propletId: string | undefined): Promise<void> {
    return this.bus.stop({ id, broadcast: false, proplet_id: propletId }).catch(() => {});
  }

  /** The proplet enforces `timeout_s`; this settles the run if it never reports. */
  private watchTimeout(id: string, runId: string, timeoutS: number): void {
    this.timers.set(id, timeoutS * 1000 + TIMEOUT_GRACE_MS, () => {
      const t = this.store.tasks.get(id);
      if (t?.state !== TaskState.Running || t.run_id !== runId) return;
      void this.sendStop(t.id, t.proplet_id);
      const error = `task timed out after ${timeoutS}s (no result from proplet ${t.proplet_id})`;
      this.endRun(t, { error, results: undefined });
    });
  }

  /**
   * Stops a task. One a user stops ends Interrupted ("stopped by user"); one stopped because its job failed
   * (`byUser` false) ends Failed, as the job's own failure does.
   */
  async stop(id: string, byUser = true): Promise<{ stopped: true }> {
    const task = this.mustGet(id);
    this.stopExtras(id);
    if (task.parts && task.state === TaskState.Running && this.fanOut) return this.fanOut.stop(task);
    const ended = (why: string): RunEnd =>
      byUser
        ? { error: `${STOPPED_BY_USER}${why}`, results: undefined, final: true, state: TaskState.Interrupted }
        : { error: `task stopped${why}`, results: undefined, final: true };
    if (task.state === TaskState.Scheduled) {
      // Not on a proplet yet: leave the queue (and any pending retry) and end as stopped.
      this.forget(id);
      this.endRun(task, ended(" before it started"));
    } else {
      if (task.state !== TaskState.Running) throw conflict(`task ${id} is not running`);
      const p = task.proplet_id ? this.proplets.get(task.proplet_id) : undefined;
      // Nobody answers a stop sent to a proplet that is gone: settle it here, not left Running. One that is only
      // cut off hears the stop when it is back (its session keeps it).
      if (!p || !this.proplets.alive(p)) {
        if (p) void this.sendStop(id, p.id);
        this.endRun(task, ended(" (its proplet is not alive)"));
      } else {
        this.stopping.set(id, byUser); // its "task stopped" result ends the retry series
        await this.bus.stop({ id, broadcast: false, proplet_id: p.id });
      }
    }
    await this.store.durable();
    log.info("task stop requested", fields({ task_id: id }));
    return { stopped: true };
  }

  /** Marks a not-yet-run task Skipped (its job failed, or its workflow branch is not taken). */
  skip(id: string, reason: string): void {
    const t = this.store.tasks.get(id);
    if (!t || (t.state !== TaskState.Pending && t.state !== TaskState.Scheduled)) return;
    this.forget(id);
    const skipped = { ...t, state: TaskState.Skipped, error: reason, updated_at: nowIso() };
    this.save({ ...skipped, queued_at: undefined, retry_at: undefined }, t.state);
    log.info(`task skipped: ${reason}`, fields({ task_id: id }));
  }

  /**
   * Ends the current run. A failure with retries left schedules the next attempt after the backoff; anything
   * else is final and is announced as such.
   */
  private endRun(task: Task, r: RunEnd): void {
    this.timers.clear(task.id);
    if (task.run_id && this.runSpans.size) {
      this.runSpans.get(task.run_id)?.end(errorOf(r.error));
      this.runSpans.delete(task.run_id);
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
      this.save({ ...retry, finish_time: now, updated_at: now, retry_at: retryAt }, task.state);
      log.warn(
        `run failed (${r.error}); retry ${attempt + 1} in ${delay / 1000}s`,
        fields({ task_id: task.id, run_id: task.run_id, proplet_id: task.proplet_id, attempt }),
      );
      this.retryLater(task.id, delay);
    } else {
      const done = finished(task, state, r.results, error, now);
      this.save(done, task.state);
      // A failed task is something an operator looks for (`journalctl -p warning`): warn, not info.
      const about = fields({ task_id: task.id, run_id: task.run_id, proplet_id: task.proplet_id });
      if (state === TaskState.Failed) log.warn(`task failed: ${done.error}`, about);
      else log.debug(`task ${stateName(state)}`, about);
      if (isTerminal(state)) this.events.taskFinal.publish(done);
    }
    this.drain();
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

  private retryLater(id: string, delayMs: number): void {
    this.timers.set(id, delayMs, () => {
      const t = this.store.tasks.get(id);
      if (t?.state === TaskState.Scheduled && t.retry_at) this.enqueue(t);
    });
  }

  /** A proplet's result for the run it is running. */
  onResult(msg: ResultMsg): void {
    this.unconfirmed.delete(msg.task_id);
    const task = this.store.tasks.get(msg.task_id);
    if (!task) {
      log.warn(`result for unknown task ${msg.task_id} dropped`);
      return;
    }
    const extra = msg.run_id ? this.extraRuns.get(msg.run_id) : undefined;
    if (extra) {
      // Every proplet sees every start message, run ids included: only the run's own proplet may end it.
      if (msg.proplet_id && msg.proplet_id !== extra.proplet) {
        log.warn(
          `task ${task.id}: result for run ${msg.run_id} from proplet ${msg.proplet_id} ignored, it runs on ${extra.proplet}`,
        );
        return;
      }
      this.endExtra(msg.run_id!, msg.results, msg.error);
      return;
    }
    // Fenced by run: a result names the start it ends. One for a run that is over (settled while its proplet was
    // cut off, then run again, or a repeat of one already taken) never touches the task's current state.
    if (msg.run_id && (msg.run_id !== task.run_id || task.state !== TaskState.Running)) {
      this.lateResult(task, msg, msg.run_id);
      return;
    }
    if (task.state !== TaskState.Running) {
      log.debug(`task ${task.id}: result ignored, the task is not running (state ${task.state})`);
      return;
    }
    if (msg.proplet_id && task.proplet_id && msg.proplet_id !== task.proplet_id) {
      log.warn(`task ${task.id}: result from proplet ${msg.proplet_id} ignored, it runs on ${task.proplet_id}`);
      return;
    }
    // The answer to a user's stop ends the task Interrupted; a run that finished first keeps its result.
    const asked = this.stopping.get(task.id);
    this.stopping.delete(task.id);
    if (asked && errorOf(msg.error)) {
      this.endRun(task, { results: msg.results, error: STOPPED_BY_USER, final: true, state: TaskState.Interrupted });
    } else this.endRun(task, { results: msg.results, error: msg.error, final: asked !== undefined, fromProplet: true });
  }

  /**
   * A result for a run that is no longer the task's current one. A run the manager settled (its proplet was
   * unreachable past the grace, or timed out) takes the proplet's outcome as its own, once; the task keeps its
   * state (one final result per start). Anything else is a repeat (QoS 1 may deliver twice) and is dropped.
   */
  private lateResult(task: Task, msg: ResultMsg, runId: string): void {
    const run = this.store.runs.get(task.id, runId);
    if (run?.state === TaskState.Running && (!msg.proplet_id || msg.proplet_id === run.proplet_id)) {
      // A run started beside the current one, whose end a manager restart forgot to wait for.
      this.store.runs.update({ ...withOutcome(run, msg.results, msg.error), finished_at: nowIso() });
      return;
    }
    // A run interrupted by this manager's shutdown keeps that outcome: the proplet's answer to that stop is no news.
    const stopAnswer = run?.error === INTERRUPTED_BY_SHUTDOWN && errorOf(msg.error) !== undefined;
    if (
      !run?.settled ||
      run.late_at ||
      stopAnswer ||
      (msg.proplet_id && run.proplet_id && msg.proplet_id !== run.proplet_id)
    ) {
      log.debug(`task ${task.id}: result for run ${runId} dropped (not a settled run waiting for one)`);
      return;
    }
    const late = { ...withOutcome(run, msg.results, msg.error), late_at: nowIso() };
    this.store.runs.update(run.error ? { ...late, settled_error: run.error } : late);
    log.info(`task ${task.id}: run ${runId} reported late (${late.status}); kept on that run only`);
  }

  /**
   * Settles the runs a proplet no longer has ("proplet lost"), retried where retries remain; with `keep` (the
   * tasks a heartbeat lists), only the others, and only once their start had time to arrive.
   */
  settleLost(
    propletId: string,
    reason: string,
    keep?: Set<string>,
    connected = true,
    runs?: { runs: Set<string>; wholeTasks: Set<string> },
  ): void {
    const now = Date.now();
    let freed = false;
    for (const id of this.proplets.runningTasks(propletId)) {
      const t = this.store.tasks.get(id);
      // A listed task counts only as the run it is in now: the proplet may still be busy with an older one (or with
      // a run beside it, which is listed under the same task).
      const current = !runs || !t?.run_id || runs.runs.has(t.run_id) || runs.wholeTasks.has(id);
      if (keep?.has(id) && current) {
        this.unconfirmed.delete(id);
        continue;
      }
      if (!t || t.state !== TaskState.Running) {
        this.proplets.track(propletId, id, false);
        freed = true;
        continue;
      }
      if (keep && now - Date.parse(t.start_time) < HEARTBEAT_GRACE_MS) continue; // start may still be in flight
      if (keep && this.unconfirmed.delete(id)) {
        log.warn(
          `task ${id}: its start was lost in the hand-over (proplet ${propletId} never ran it); starting it again`,
        );
        this.proplets.track(propletId, id, false);
        this.enqueue(t);
        continue;
      }
      log.warn(reason, fields({ task_id: id, run_id: t.run_id, proplet_id: propletId }));
      // A proplet still connected may still run it: tell it to stop, so no Wasm spins on as an orphan.
      if (connected) void this.sendStop(id, propletId);
      this.endRun(t, { error: reason, results: undefined });
    }
    for (const [runId, e] of this.extraRuns) {
      if (e.proplet !== propletId) continue;
      if (keep && (runs ? runs.runs.has(runId) || runs.wholeTasks.has(e.task) : keep.has(e.task))) continue;
      if (keep && now - e.startedAt < HEARTBEAT_GRACE_MS) continue;
      if (connected) void this.sendStop(e.task, propletId);
      this.endExtra(runId, undefined, reason, true);
    }
    if (freed) this.drain();
  }

  /** Graceful shutdown: running tasks are stopped and marked Interrupted, as upstream. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.timers.clearAll();
    for (const t of this.store.tasks.listByState([TaskState.Running])) {
      // Ended before the stop is sent: the proplet's answer to the stop (which may come at once, from a proplet
      // still preparing the run) is then a result for a finished run, not the run's end.
      const interrupted = { error: INTERRUPTED_BY_SHUTDOWN, results: undefined, final: true };
      this.endRun(t, { ...interrupted, state: TaskState.Interrupted });
      if (t.proplet_id) await this.sendStop(t.id, t.proplet_id);
    }
  }
}

/** Why a run ended when its start message could not be published. */
function publishFailed(e: unknown): string {
  // A start the site's trust policy refused (cli/site.ts): its reason is the task's error, as it is.
  if (e instanceof AppError && e.kind === "forbidden") return e.message;
  return `failed to publish start message: ${e instanceof Error ? e.message : e}`;
}

/** A task pinned by a proplet's name (as a person writes it) is queued and stored pinned by that proplet's id. */
function pinById(task: Task, proplets: PropletRegistry): Task {
  if (!task.pinned || !task.proplet_id) return task;
  const id = proplets.idOf(task.proplet_id);
  return id === task.proplet_id ? task : { ...task, proplet_id: id };
}
