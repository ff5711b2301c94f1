import { badRequest, conflict, notFound } from "../core/errors.ts";
import type { AliveMsg, CreateMsg, ResultMsg, StartMsg, StopMsg } from "../core/messages.ts";
import { isAlive, type Proplet, propletName, propletView, type PropletView, recordHeartbeat } from "../core/proplet.ts";
import { roundRobin } from "../core/scheduler.ts";
import { TaskState } from "../core/states.ts";
import { applyUpdate, newTask, type Task, type TaskCreate, type TaskUpdate, taskView, type TaskView } from "../core/task.ts";
import { nowIso, ZERO_TIME } from "../core/time.ts";
import { tag } from "../log.ts";

const log = tag("manager");
import type { Storage } from "../storage/repository.ts";

// The manager's use cases. Handlers call these; these call storage and the bus. Nothing here knows HTTP or MQTT.

/** What the service needs from the message bus: publishing to proplets. */
export interface ManagerBus {
  start(msg: StartMsg): Promise<void>;
  stop(msg: StopMsg): Promise<void>;
}

export interface ServiceOptions {
  /** A proplet whose last heartbeat is older than this is not alive. */
  livelinessThresholdMs: number;
}

export interface PageOut<T> {
  offset: number;
  limit: number;
  total: number;
  items: T[];
}

export class ManagerService {
  // Proplets are few and read on every start: a write-through cache in front of the repository.
  private proplets = new Map<string, Proplet>();
  /** Running task ids per proplet: `task_count` is derived from it (DESIGN §4.3), never stored. */
  private runningOn = new Map<string, Set<string>>();
  private lastPick: string | undefined;

  constructor(
    private store: Storage,
    private bus: ManagerBus,
    private opts: ServiceOptions,
  ) {
    for (const p of store.proplets.all()) this.proplets.set(p.id, p);
    for (const t of store.tasks.listByState([TaskState.Running])) if (t.proplet_id) this.track(t.proplet_id, t.id, true);
  }

  private track(propletId: string, taskId: string, running: boolean): void {
    let set = this.runningOn.get(propletId);
    if (!set) this.runningOn.set(propletId, (set = new Set()));
    if (running) set.add(taskId);
    else set.delete(taskId);
  }

  private taskCount(propletId: string): number {
    return this.runningOn.get(propletId)?.size ?? 0;
  }

  // ---- tasks ----

  async createTask(input: TaskCreate): Promise<TaskView> {
    const task = newTask(crypto.randomUUID(), input, nowIso());
    this.store.tasks.create(task);
    await this.store.durable();
    log.debug(`task ${task.id} created (${task.name})`);
    return taskView(task);
  }

  private mustGet(id: string): Task {
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

  async updateTask(id: string, patch: TaskUpdate): Promise<TaskView> {
    const task = this.mustGet(id);
    if (task.state === TaskState.Running && (patch.file !== undefined || patch.image_url !== undefined)) {
      throw conflict(`task ${id} is running: stop it before changing its module`);
    }
    const next = applyUpdate(task, patch, nowIso());
    if (next.broadcast && next.pinned) throw badRequest("proplet_id: broadcast and proplet_id are mutually exclusive");
    this.store.tasks.update(next);
    await this.store.durable();
    return taskView(next);
  }

  async deleteTask(id: string): Promise<void> {
    const task = this.mustGet(id);
    if (task.state === TaskState.Running) await this.stopTask(id);
    this.store.tasks.delete(id);
    await this.store.durable();
    log.info(`task ${id} deleted`);
  }

  private pickProplet(task: Task): Proplet {
    const now = Date.now();
    if (task.pinned && task.proplet_id) {
      const p = this.proplets.get(task.proplet_id);
      if (!p) throw notFound(`proplet ${task.proplet_id} (pinned by the task) not found`);
      if (!isAlive(p, now, this.opts.livelinessThresholdMs)) throw conflict(`proplet ${p.id} (pinned by the task) is not alive`);
      return p;
    }
    const alive = [...this.proplets.values()].filter((p) => isAlive(p, now, this.opts.livelinessThresholdMs));
    const chosen = roundRobin(alive, this.lastPick);
    if (!chosen) throw conflict("no alive proplet to run the task: start one with `propeller proplet`");
    this.lastPick = chosen.id;
    return chosen;
  }

  async startTask(id: string): Promise<{ started: true }> {
    const task = this.mustGet(id);
    if (task.state === TaskState.Running) throw conflict(`task ${id} is already running`);
    if (!task.file && !task.image_url) throw badRequest(`task ${id} has no module: set file, image_url or upload a .wasm`);
    const proplet = this.pickProplet(task);
    const now = nowIso();
    const running: Task = {
      ...task,
      state: TaskState.Running,
      proplet_id: proplet.id,
      start_time: now,
      finish_time: ZERO_TIME,
      updated_at: now,
      results: undefined,
      error: undefined,
    };
    this.store.tasks.update(running);
    this.track(proplet.id, id, true);
    try {
      // Running is committed before the proplet hears of the task: a crash in between cannot lose a run.
      await this.store.durable();
      await this.bus.start(startMessage(running));
    } catch (e) {
      const msg = `failed to publish start message: ${e instanceof Error ? e.message : e}`;
      this.finish(running, { error: msg, results: undefined });
      await this.store.durable();
      throw new Error(msg);
    }
    log.debug(`task ${id} started on proplet ${proplet.id}`);
    return { started: true };
  }

  async stopTask(id: string): Promise<{ stopped: true }> {
    const task = this.mustGet(id);
    if (task.state !== TaskState.Running) throw conflict(`task ${id} is not running`);
    const p = task.proplet_id ? this.proplets.get(task.proplet_id) : undefined;
    if (!p || !isAlive(p, Date.now(), this.opts.livelinessThresholdMs)) {
      // Nobody would answer the stop: settle it here so the task is not left Running.
      this.finish(task, { error: "task stopped (its proplet is not alive)", results: undefined });
      await this.store.durable();
    } else {
      await this.bus.stop({ id, broadcast: false, proplet_id: p.id });
    }
    log.info(`task ${id} stop requested`);
    return { stopped: true };
  }

  /** Ends a run: Completed or Failed, `task_count` down (DESIGN §4.3). */
  private finish(task: Task, r: { results: unknown; error?: string | null }): Task {
    const now = nowIso();
    const failed = typeof r.error === "string" && r.error !== "";
    const done: Task = {
      ...task,
      state: failed ? TaskState.Failed : TaskState.Completed,
      results: r.results,
      error: failed ? r.error! : undefined,
      finish_time: now,
      updated_at: now,
    };
    this.store.tasks.update(done);
    if (task.proplet_id) this.track(task.proplet_id, task.id, false);
    return done;
  }

  handleResult(msg: ResultMsg): void {
    const task = this.store.tasks.get(msg.task_id);
    if (!task) {
      log.warn(`result for unknown task ${msg.task_id} dropped`);
      return;
    }
    if (task.state !== TaskState.Running) {
      log.warn(`task ${task.id}: result ignored, the task is not running (state ${task.state})`);
      return;
    }
    if (msg.proplet_id && task.proplet_id && msg.proplet_id !== task.proplet_id) {
      log.warn(`task ${task.id}: result from proplet ${msg.proplet_id} ignored, it runs on ${task.proplet_id}`);
      return;
    }
    const done = this.finish(task, { results: msg.results, error: msg.error });
    if (done.state === TaskState.Failed) log.info(`task ${task.id} failed: ${done.error}`);
    else log.debug(`task ${task.id} completed`);
  }

  // ---- proplets ----

  private saveProplet(p: Proplet): void {
    this.proplets.set(p.id, p);
    this.store.proplets.upsert(p);
  }

  private ensureProplet(id: string): Proplet {
    return this.proplets.get(id) ?? { id, name: propletName(id), metadata: {}, alive_history: [] };
  }

  handleCreate(msg: CreateMsg): void {
    const known = this.proplets.has(msg.proplet_id);
    const p = this.ensureProplet(msg.proplet_id);
    this.saveProplet(recordHeartbeat({ ...p, metadata: msg.metadata ?? p.metadata }, nowIso()));
    log.info(`proplet ${msg.proplet_id} ${known ? "reconnected" : "registered"} (${p.name})`);
  }

  handleAlive(msg: AliveMsg): void {
    const p = this.ensureProplet(msg.proplet_id);
    if (msg.status === "offline") {
      if (!this.proplets.has(p.id)) return;
      this.saveProplet({ ...p, offline: true });
      log.info(`proplet ${p.id} went offline`);
      return;
    }
    if (p.offline) log.info(`proplet ${p.id} is back`);
    this.saveProplet(recordHeartbeat(p, nowIso()));
  }

  listProplets(offset: number, limit: number): PageOut<PropletView> {
    const now = Date.now();
    const all = [...this.proplets.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    return {
      offset,
      limit,
      total: all.length,
      items: all.slice(offset, offset + limit).map((p) => propletView(p, this.taskCount(p.id), now, this.opts.livelinessThresholdMs)),
    };
  }

  hasProplet(id: string): boolean {
    return this.proplets.has(id);
  }

  getProplet(id: string): PropletView {
    const p = this.proplets.get(id);
    if (!p) throw notFound(`proplet ${id} not found`);
    return propletView(p, this.taskCount(id), Date.now(), this.opts.livelinessThresholdMs);
  }

  async deleteProplet(id: string): Promise<void> {
    if (!this.proplets.has(id)) throw notFound(`proplet ${id} not found`);
    const n = this.taskCount(id);
    if (n > 0) throw conflict(`proplet ${id} has ${n} active tasks`);
    this.proplets.delete(id);
    this.runningOn.delete(id);
    this.store.proplets.delete(id);
    await this.store.durable();
  }
}

/** The start message of DESIGN §3: unicast (`broadcast:false`, `proplet_id` set), inputs as strings. */
export function startMessage(t: Task): StartMsg {
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
  };
}
