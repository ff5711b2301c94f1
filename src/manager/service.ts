import { nextRun } from "../core/cron.ts";
import { badRequest, conflict, notFound } from "../core/errors.ts";
import type {
  AliveMsg,
  CreateMsg,
  PropletMetricsMsg,
  ResultMsg,
  StartMsg,
  StopMsg,
  TaskMetricsMsg,
} from "../core/messages.ts";
import type { Proplet, PropletView } from "../core/proplet.ts";
import type { Run } from "../core/run.ts";
import { place, retryDelayMs, type SchedulerName } from "../core/scheduler.ts";
import { isTerminal, stateName, TaskState } from "../core/states.ts";
import {
  applyUpdate,
  newTask,
  type Task,
  type TaskCreate,
  type TaskUpdate,
  type TaskView,
  taskView,
} from "../core/task.ts";
import { nowIso, ZERO_TIME } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import { CronRunner } from "./cron.ts";
import { EventHub } from "./events.ts";
import { PropletRegistry } from "./proplets.ts";
import { TaskQueue } from "./queue.ts";

const log = tag("manager");

// The manager's use cases. Handlers call these; these call storage and the bus. Nothing here knows HTTP or MQTT.
//
// A start puts the task in the queue (Scheduled); the queue drains by priority onto alive proplets with a free
// slot. Every dispatch is a run. A failed run is retried with exponential backoff while retries remain. Tasks on
// a proplet that is lost, or that stops listing them in its heartbeat, are settled; nothing stays Running forever.

/** What the service needs from the message bus: publishing to proplets. */
export interface ManagerBus {
  start(msg: StartMsg): Promise<void>;
  stop(msg: StopMsg): Promise<void>;
}

export interface ServiceOptions {
  /** A proplet whose last heartbeat is older than this is not alive. */
  livelinessThresholdMs: number;
  /** A proplet silent for this long (and running nothing) is forgotten; 0 keeps them all. */
  staleRemovalMs?: number;
  scheduler: SchedulerName;
}

export interface PageOut<T> {
  offset: number;
  limit: number;
  total: number;
  items: T[];
}

/** A heartbeat that omits a task started this long ago means the proplet no longer runs it. */
const HEARTBEAT_GRACE_MS = 3000;
/** Extra time the manager gives a proplet to report a timed-out run before settling it itself. */
const TIMEOUT_GRACE_MS = 5000;

export class ManagerService {
  /** Queued tasks, kept whole so placing them needs no storage read. */
  private queue = new TaskQueue();
  private timers = new Map<string, Timer>();
  /** Cron firings that found the task busy under overlap_policy "allow": run once it ends. */
  private pendingFire = new Set<string>();
  /** Tasks whose stop was sent: their "task stopped" result ends the retry series. */
  private stopping = new Set<string>();
  private lastPick: string | undefined;
  private shuttingDown = false;
  readonly proplets: PropletRegistry;
  readonly cron: CronRunner;
  readonly events = new EventHub();
  /** Totals since start, for /metrics. */
  readonly counters = { starts: 0, completions: 0, failures: 0 };
  /** Called when a task reaches a final state (jobs and workflows progress on it). */
  onFinal: (t: Task) => void = () => {};

  constructor(
    private store: Storage,
    private bus: ManagerBus,
    private opts: ServiceOptions,
  ) {
    this.cron = new CronRunner((id, at) => void this.fireSchedule(id, at));
    this.proplets = new PropletRegistry(store, this.events, opts);
  }

  /** Rebuilds in-memory state from storage after a start or a crash. */
  recover(): void {
    const now = Date.now();
    // One scan of the unfinished tasks (there is no index on state: it would cost every task update).
    for (const t of this.store.tasks.listByState([TaskState.Running, TaskState.Scheduled, TaskState.Interrupted])) {
      if (t.state === TaskState.Running) {
        if (t.proplet_id) this.proplets.track(t.proplet_id, t.id, true);
      } else if (t.state === TaskState.Interrupted)
        this.endRun(t, { error: "interrupted by shutdown", results: t.results });
      else if (t.retry_at && t.retry_at > now) this.retryLater(t.id, t.retry_at - now);
      else this.queue.set({ id: t.id, priority: t.priority, queuedAt: t.queued_at ?? now, task: t });
    }
    for (const t of this.store.tasks.listScheduled()) this.armSchedule(t, true);
    this.drain();
  }

  private save(t: Task, prevState?: number): void {
    this.store.tasks.update(t);
    if (prevState !== undefined && prevState !== t.state) this.taskEvent(t);
  }

  private taskEvent(t: Task): void {
    if (this.events.listeners === 0) return;
    this.events.emit({
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

  // ---- tasks ----

  async createTask(input: TaskCreate): Promise<TaskView> {
    const created = newTask(crypto.randomUUID(), input, nowIso());
    this.store.tasks.create(created);
    const task = this.armSchedule(created, false);
    await this.store.durable();
    this.taskEvent(task);
    log.debug(`task ${task.id} created (${task.name})`);
    return taskView(task);
  }

  /** Inserts tasks of a job or workflow as they are (ids and depends_on already resolved). */
  insertTasks(tasks: Task[]): void {
    for (const t of tasks) {
      if (this.store.tasks.get(t.id)) throw conflict(`task id ${t.id} already exists`);
    }
    for (const t of tasks) {
      this.store.tasks.create(t);
      this.armSchedule(t, false);
    }
  }

  durable(): Promise<void> {
    return this.store.durable();
  }

  mustGet(id: string): Task {
    const t = this.store.tasks.get(id);
    if (!t) throw notFound(`task ${id} not found`);
    return t;
  }

  getTask(id: string): TaskView {
    return taskView(this.mustGet(id));
  }

  getResults(id: string): { results: unknown } {
    return { results: this.mustGet(id).results ?? null };
  }

  listTasks(offset: number, limit: number): PageOut<TaskView> {
    const r = this.store.tasks.list(offset, limit);
    return { offset, limit, total: r.total, items: r.items.map(taskView) };
  }

  listRuns(id: string, offset: number, limit: number): PageOut<Run> {
    const task = this.mustGet(id);
    // A running task's current run is not stored yet: it leads the list.
    const live = task.state === TaskState.Running && task.run_id ? [currentRun(task)] : [];
    const r = this.store.runs.listByTask(id, Math.max(0, offset - live.length), limit);
    const items = [...live.slice(offset), ...r.items].slice(0, limit);
    return { offset, limit, total: r.total + live.length, items };
  }

  async updateTask(id: string, patch: TaskUpdate): Promise<TaskView> {
    const task = this.mustGet(id);
    if (task.state === TaskState.Running && (patch.file !== undefined || patch.image_url !== undefined)) {
      throw conflict(`task ${id} is running: stop it before changing its module`);
    }
    const next = applyUpdate(task, patch, nowIso());
    if (next.broadcast && next.pinned) throw badRequest("proplet_id: broadcast and proplet_id are mutually exclusive");
    const scheduleChanged = patch.schedule !== undefined || patch.timezone !== undefined;
    if (scheduleChanged) {
      next.next_run = ZERO_TIME;
      if (!next.schedule) this.cron.remove(id);
    }
    this.store.tasks.update(next, patch.file !== undefined);
    const stored = scheduleChanged ? this.armSchedule(next, false) : next;
    const queued = this.queue.get(id);
    if (queued) this.queue.set({ ...queued, priority: stored.priority, task: stored });
    await this.store.durable();
    return taskView(stored);
  }

  async deleteTask(id: string): Promise<void> {
    const task = this.mustGet(id);
    if (task.state === TaskState.Running) await this.stopTask(id);
    this.queue.delete(id);
    this.cron.remove(id);
    this.clearTimer(id);
    this.store.tasks.delete(id);
    await this.store.durable();
    log.info(`task ${id} deleted`);
  }

  /** Missing parents, or parents not yet final, mean the task must wait for its job or workflow. */
  private unmetDependencies(t: Task): string[] {
    return (t.depends_on ?? []).filter((d) => {
      const p = this.store.tasks.get(d);
      return !p || !isTerminal(p.state);
    });
  }

  /** Queues the task; it runs as soon as a proplet has a free slot. */
  async startTask(id: string): Promise<{ started: true; state: number; status: string }> {
    if (this.shuttingDown) throw conflict("the manager is shutting down");
    const task = this.mustGet(id);
    if (task.state === TaskState.Running || task.state === TaskState.Scheduled)
      throw conflict(`task ${id} is already ${stateName(task.state)}`);
    if (!task.file && !task.image_url)
      throw badRequest(`task ${id} has no module: set file, image_url or upload a .wasm`);
    if (task.pinned && task.proplet_id && !this.proplets.has(task.proplet_id))
      throw notFound(`proplet ${task.proplet_id} (pinned by the task) not found`);
    const unmet = this.unmetDependencies(task);
    if (unmet.length) throw conflict(`task ${id} has unmet dependencies: waiting for ${unmet.join(", ")}`);
    const state = this.enqueue({ ...task, attempt: 1, error: undefined, results: undefined });
    await this.store.durable();
    return { started: true, state, status: stateName(state) };
  }

  /** Queues the task and tries to place it at once; only a task left waiting is stored as Scheduled. */
  private enqueue(task: Task): number {
    const queuedAt = Date.now();
    const t: Task = {
      ...task,
      state: TaskState.Scheduled,
      queued_at: queuedAt,
      retry_at: undefined,
      updated_at: nowIso(),
    };
    this.queue.set({ id: t.id, priority: t.priority, queuedAt, task: t });
    this.drain();
    if (!this.queue.has(t.id)) return TaskState.Running;
    this.save(t, task.state);
    return TaskState.Scheduled;
  }

  /** Places queued tasks, highest priority first, while proplets have free slots. */
  private drain(): void {
    if (this.queue.size === 0 || this.shuttingDown) return;
    const now = Date.now();
    const cands = this.proplets.candidates(now);
    if (!cands.some((c) => c.running < c.capacity)) return;
    for (const q of this.queue.inOrder()) {
      const task = q.task;
      const pool = task.pinned && task.proplet_id ? cands.filter((c) => c.id === task.proplet_id) : cands;
      const chosen = place(this.opts.scheduler, pool, this.lastPick);
      if (!chosen) {
        // Strict priority: nothing of lower priority passes a waiting task.
        if (this.opts.scheduler === "priority") return;
        continue;
      }
      if (!(task.pinned && task.proplet_id)) this.lastPick = chosen.id;
      chosen.running++;
      this.queue.delete(q.id);
      this.dispatch(task, chosen.proplet);
      if (!cands.some((c) => c.running < c.capacity)) return;
    }
  }

  private dispatch(task: Task, proplet: Proplet): void {
    const now = nowIso();
    // The current run lives in the task (run_id, attempt, proplet_id, start_time) and is stored as a run record
    // when it ends: one write per run instead of two.
    const runId = crypto.randomUUID();
    const running: Task = {
      ...task,
      state: TaskState.Running,
      proplet_id: proplet.id,
      run_id: runId,
      start_time: now,
      finish_time: ZERO_TIME,
      updated_at: now,
      queued_at: undefined,
      results: undefined,
    };
    this.save(running, task.state);
    this.proplets.track(proplet.id, task.id, true);
    this.counters.starts++;
    if (this.events.listeners)
      this.events.emit({
        type: "run",
        phase: "started",
        task_id: task.id,
        run_id: runId,
        attempt: task.attempt ?? 1,
        proplet_id: proplet.id,
        at: now,
      });
    if (task.timeout_s) {
      this.setTimer(task.id, task.timeout_s * 1000 + TIMEOUT_GRACE_MS, () => {
        const t = this.store.tasks.get(task.id);
        if (t?.state !== TaskState.Running || t.run_id !== runId) return;
        void this.bus.stop({ id: t.id, broadcast: false, proplet_id: t.proplet_id }).catch(() => {});
        this.endRun(t, {
          error: `task timed out after ${task.timeout_s}s (no result from proplet ${t.proplet_id})`,
          results: undefined,
        });
      });
    }
    const msg = this.startMessage(running);
    // Running is committed before the proplet hears of the task: a crash in between cannot lose a run.
    void this.store
      .durable()
      .then(() => this.bus.start(msg))
      .then(() => log.debug(`task ${task.id} run ${runId} started on proplet ${proplet.id}`))
      .catch((e) => {
        const t = this.store.tasks.get(task.id);
        if (t?.run_id === runId && t.state === TaskState.Running) {
          this.endRun(t, {
            error: `failed to publish start message: ${e instanceof Error ? e.message : e}`,
            results: undefined,
          });
        }
      });
  }

  async stopTask(id: string): Promise<{ stopped: true }> {
    const task = this.mustGet(id);
    if (task.state === TaskState.Scheduled) {
      // Not on a proplet yet: leave the queue (and any pending retry) and end as stopped.
      this.queue.delete(id);
      this.clearTimer(id);
      this.endRun(task, { error: "task stopped before it started", results: undefined, final: true });
      await this.store.durable();
      return { stopped: true };
    }
    if (task.state !== TaskState.Running) throw conflict(`task ${id} is not running`);
    const p = task.proplet_id ? this.proplets.get(task.proplet_id) : undefined;
    if (!p || !this.proplets.alive(p)) {
      // Nobody would answer the stop: settle it here so the task is not left Running.
      this.endRun(task, { error: "task stopped (its proplet is not alive)", results: undefined, final: true });
    } else {
      this.stopping.add(id); // its "task stopped" result ends the retry series
      await this.bus.stop({ id, broadcast: false, proplet_id: p.id });
    }
    await this.store.durable();
    log.info(`task ${id} stop requested`);
    return { stopped: true };
  }

  /** Marks a not-yet-run task Skipped (its job failed, or its workflow branch is not taken). */
  skipTask(id: string, reason: string): void {
    const t = this.store.tasks.get(id);
    if (!t || (t.state !== TaskState.Pending && t.state !== TaskState.Scheduled)) return;
    this.queue.delete(id);
    this.clearTimer(id);
    this.save(
      {
        ...t,
        state: TaskState.Skipped,
        error: reason,
        updated_at: nowIso(),
        queued_at: undefined,
        retry_at: undefined,
      },
      t.state,
    );
    log.info(`task ${id} skipped: ${reason}`);
  }

  /**
   * Ends the current run. A failure with retries left schedules the next attempt after the backoff; anything
   * else is final and tells the job or workflow.
   */
  private endRun(task: Task, r: { results: unknown; error?: string | null; final?: boolean; state?: number }): void {
    this.clearTimer(task.id);
    const now = nowIso();
    const failed = typeof r.error === "string" && r.error !== "";
    const state = r.state ?? (failed ? TaskState.Failed : TaskState.Completed);
    if (task.run_id && task.state === TaskState.Running) {
      this.store.runs.create({
        ...currentRun(task),
        state,
        status: stateName(state),
        finished_at: now,
        results: r.results,
        ...(failed ? { error: r.error! } : {}),
      });
      if (failed) this.counters.failures++;
      else this.counters.completions++;
      if (this.events.listeners) {
        this.events.emit({
          type: "run",
          phase: "ended",
          task_id: task.id,
          run_id: task.run_id,
          attempt: task.attempt ?? 1,
          proplet_id: task.proplet_id,
          state,
          status: stateName(state),
          ...(failed ? { error: r.error! } : {}),
          at: now,
        });
      }
    }
    if (task.proplet_id && task.state === TaskState.Running) this.proplets.track(task.proplet_id, task.id, false);
    const attempt = task.attempt ?? 1;
    if (failed && !r.final && state === TaskState.Failed && attempt <= (task.max_retries ?? 0)) {
      const delay = retryDelayMs(task.retry_backoff_s ?? 1, attempt);
      const retryAt = Date.now() + delay;
      this.save(
        {
          ...task,
          state: TaskState.Scheduled,
          attempt: attempt + 1,
          results: r.results,
          error: r.error!,
          finish_time: now,
          updated_at: now,
          retry_at: retryAt,
        },
        task.state,
      );
      log.info(`task ${task.id} attempt ${attempt} failed (${r.error}); retry ${attempt + 1} in ${delay / 1000}s`);
      this.retryLater(task.id, delay);
    } else {
      const done: Task = {
        ...task,
        state,
        results: r.results,
        error: failed ? r.error! : undefined,
        finish_time: now,
        updated_at: now,
        retry_at: undefined,
      };
      this.save(done, task.state);
      if (state === TaskState.Failed) log.info(`task ${task.id} failed: ${done.error}`);
      else log.debug(`task ${task.id} ${stateName(state)}`);
      if (isTerminal(state)) {
        this.onFinal(done);
        if (this.pendingFire.delete(task.id) && done.schedule) void this.startScheduled(task.id);
      }
    }
    this.drain();
  }

  private retryLater(id: string, delayMs: number): void {
    this.setTimer(id, delayMs, () => {
      const t = this.store.tasks.get(id);
      if (t?.state === TaskState.Scheduled && t.retry_at) this.enqueue(t);
    });
  }

  private setTimer(id: string, ms: number, fn: () => void): void {
    this.clearTimer(id);
    const timer = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, ms);
    this.timers.set(id, timer);
  }

  private clearTimer(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
  }

  handleResult(msg: ResultMsg): void {
    const task = this.store.tasks.get(msg.task_id);
    if (!task) {
      log.warn(`result for unknown task ${msg.task_id} dropped`);
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
    this.endRun(task, { results: msg.results, error: msg.error, final: this.stopping.delete(task.id) });
  }

  /** Settles the tasks a proplet no longer runs: "proplet lost", retried where retries remain. */
  private settleLost(propletId: string, reason: string, keep?: Set<string>): void {
    const now = Date.now();
    for (const id of this.proplets.runningTasks(propletId)) {
      if (keep?.has(id)) continue;
      const t = this.store.tasks.get(id);
      if (!t || t.state !== TaskState.Running) {
        this.proplets.track(propletId, id, false);
        continue;
      }
      if (keep && now - Date.parse(t.start_time) < HEARTBEAT_GRACE_MS) continue; // start may still be in flight
      log.warn(`task ${id}: ${reason}`);
      this.endRun(t, { error: reason, results: undefined });
    }
  }

  /** Periodic check: proplets whose heartbeats stopped, and the tasks they had. */
  checkLiveness(): void {
    const { lost, forgotten } = this.proplets.sweep(Date.now());
    for (const id of forgotten)
      log.info(`proplet ${id} forgotten: no heartbeat for ${this.opts.staleRemovalMs! / 1000}s`);
    for (const id of lost) this.settleLost(id, `proplet lost: ${id} stopped sending heartbeats`);
  }

  /** Graceful shutdown: running tasks are stopped and marked Interrupted, as upstream. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.cron.stop();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const t of this.store.tasks.listByState([TaskState.Running])) {
      if (t.proplet_id) await this.bus.stop({ id: t.id, broadcast: false, proplet_id: t.proplet_id }).catch(() => {});
      this.endRun(t, {
        error: "interrupted by shutdown",
        results: undefined,
        final: true,
        state: TaskState.Interrupted,
      });
    }
    this.proplets.flush();
    await this.store.durable();
  }

  // ---- cron ----

  /**
   * Computes and stores next_run, and arms the timer; returns the task as stored. At start-up, a missed firing
   * follows misfire_policy.
   */
  private armSchedule(task: Task, atStartup: boolean): Task {
    if (!task.schedule) return task;
    const now = Date.now();
    const stored = task.next_run && task.next_run !== ZERO_TIME ? Date.parse(task.next_run) : NaN;
    if (atStartup && Number.isFinite(stored) && stored > now) {
      this.cron.set(task.id, stored);
      return task;
    }
    if (atStartup && Number.isFinite(stored) && stored <= now && task.misfire_policy === "run_once") {
      log.info(`task ${task.id}: schedule missed while the manager was down; running it once now`);
      this.cron.set(task.id, now);
      return task;
    }
    const next = nextRun(task.schedule, task.timezone, new Date(now));
    const iso = next ? next.toISOString() : ZERO_TIME;
    const armed = iso === task.next_run ? task : { ...task, next_run: iso };
    if (armed !== task) this.save(armed); // the module column is left alone, so a task read without it is fine
    if (next) this.cron.set(task.id, next.getTime());
    return armed;
  }

  private async fireSchedule(id: string, at: number): Promise<void> {
    const task = this.store.tasks.get(id);
    if (!task?.schedule) return;
    // Advance next_run (or end a one-shot schedule) before starting, so a crash cannot fire it twice.
    const next = task.is_recurring
      ? nextRun(task.schedule, task.timezone, new Date(Math.max(at, Date.now())))
      : undefined;
    const updated: Task = task.is_recurring
      ? { ...task, next_run: next?.toISOString() ?? ZERO_TIME }
      : { ...task, schedule: undefined, next_run: ZERO_TIME };
    this.save(updated);
    if (next) this.cron.set(id, next.getTime());
    const busy = task.state === TaskState.Running || task.state === TaskState.Scheduled;
    if (busy) {
      if (task.overlap_policy === "allow") this.pendingFire.add(id);
      log.info(
        `task ${id}: cron firing while the previous run is active: ${task.overlap_policy === "allow" ? "runs when it ends" : "skipped"}`,
      );
      await this.store.durable();
      return;
    }
    await this.startScheduled(id);
  }

  private async startScheduled(id: string): Promise<void> {
    try {
      await this.startTask(id);
      log.debug(`task ${id} fired by its schedule`);
    } catch (e) {
      log.warn(`task ${id}: scheduled start failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  // ---- proplets ----

  handleCreate(msg: CreateMsg): void {
    const r = this.proplets.onCreate(msg);
    log.info(`proplet ${msg.proplet_id} ${r.known ? "reconnected" : "registered"} (${r.name})`);
    this.drain();
  }

  handleAlive(msg: AliveMsg): void {
    const r = this.proplets.onAlive(msg);
    if (!r) return;
    if (r.offline) {
      log.info(`proplet ${msg.proplet_id} went offline`);
      this.settleLost(msg.proplet_id, `proplet lost: ${msg.proplet_id} went offline`);
      return;
    }
    if (r.back) log.info(`proplet ${msg.proplet_id} is back`);
    // A proplet that lists its tasks tells us which runs it lost (a crash and restart, say).
    if (msg.tasks)
      this.settleLost(
        msg.proplet_id,
        `interrupted: proplet ${msg.proplet_id} is no longer running the task`,
        new Set(msg.tasks),
      );
    if (r.wasDown) this.drain();
  }

  listProplets(offset: number, limit: number, status?: "active" | "inactive"): PageOut<PropletView> {
    return { offset, limit, ...this.proplets.list(offset, limit, status) };
  }

  // ---- metrics samples ----

  handlePropletMetrics(msg: PropletMetricsMsg): void {
    if (!this.proplets.has(msg.proplet_id)) return;
    const at = sampleTime(msg.timestamp);
    this.store.metrics.addProplet(msg.proplet_id, at, { ...msg, timestamp: at });
    if (this.events.listeners)
      this.events.emit({ type: "metrics", kind: "proplet", proplet_id: msg.proplet_id, sample: msg, at });
  }

  handleTaskMetrics(msg: TaskMetricsMsg): void {
    const at = sampleTime(msg.timestamp);
    this.store.metrics.addTask(msg.task_id, at, { ...msg, timestamp: at });
    if (this.events.listeners)
      this.events.emit({
        type: "metrics",
        kind: "task",
        proplet_id: msg.proplet_id,
        task_id: msg.task_id,
        sample: msg,
        at,
      });
  }

  propletMetrics(id: string, offset: number, limit: number): PageOut<unknown> {
    if (!this.proplets.has(id)) throw notFound(`proplet ${id} not found`);
    const r = this.store.metrics.listProplet(id, offset, limit);
    return { offset, limit, total: r.total, items: r.items };
  }

  taskMetrics(id: string, offset: number, limit: number): PageOut<unknown> {
    this.mustGet(id);
    const r = this.store.metrics.listTask(id, offset, limit);
    return { offset, limit, total: r.total, items: r.items };
  }

  aliveHistory(id: string, offset: number, limit: number): PageOut<string> {
    return { offset, limit, ...this.proplets.aliveHistory(id, offset, limit) };
  }

  /** Figures for /metrics. */
  tasksByState(): Record<number, number> {
    return this.store.tasks.countByState();
  }

  queueDepth(): number {
    return this.queue.size;
  }

  propletsAlive(): number {
    return this.proplets.aliveCount();
  }

  hasProplet(id: string): boolean {
    return this.proplets.has(id);
  }

  getProplet(id: string): PropletView {
    return this.proplets.view(id);
  }

  async deleteProplet(id: string): Promise<void> {
    this.proplets.delete(id);
    await this.store.durable();
  }

  /** The start message of DESIGN §3: unicast (`broadcast:false`, `proplet_id` set), inputs as strings. */
  private startMessage(t: Task): StartMsg {
    const parents: Record<string, unknown> = {};
    for (const d of t.depends_on ?? []) {
      const p = this.store.tasks.get(d);
      if (p?.state === TaskState.Completed && p.results !== undefined && p.results !== null) parents[d] = p.results;
    }
    return {
      id: t.id,
      name: t.name,
      state: t.state,
      cli_args: t.cli_args ?? undefined,
      broadcast: false,
      daemon: t.daemon,
      latent: t.latent ?? false,
      encrypted: t.encrypted,
      proplet_id: t.proplet_id,
      ...(t.image_url ? { image_url: t.image_url } : {}),
      ...(t.file ? { file: t.file } : {}),
      ...(t.inputs?.length ? { inputs: t.inputs } : {}),
      ...(t.env && Object.keys(t.env).length ? { env: t.env } : {}),
      ...(t.kbs_resource_path ? { kbs_resource_path: t.kbs_resource_path } : {}),
      ...(t.monitoring_profile ? { monitoring_profile: t.monitoring_profile } : {}),
      ...(t.hal_storage_path ? { hal_storage_path: t.hal_storage_path } : {}),
      ...(Object.keys(parents).length ? { parent_results: parents } : {}),
      ...(t.timeout_s ? { timeout_s: t.timeout_s } : {}),
    };
  }
}

/** A sample's time in one form, so samples sort by it; its receive time when the proplet sent none. */
function sampleTime(ts: string | undefined): string {
  return ts ? new Date(ts).toISOString() : nowIso();
}

/** The run a Running task is in, from the task's own fields. */
function currentRun(t: Task): Run {
  return {
    run_id: t.run_id!,
    task_id: t.id,
    attempt: t.attempt ?? 1,
    state: TaskState.Running,
    status: "Running",
    proplet_id: t.proplet_id,
    started_at: t.start_time,
  };
}
