import { deleteRefusal, moduleChangeRefusal } from "../core/dag.ts";
import { conflict, describeZodError, invalid, notFound } from "../core/errors.ts";
import { base64Bytes, DEFAULT_MAX_MODULE_MB, moduleTooLarge } from "../core/module-size.ts";
import type { Page } from "../core/page.ts";
import { currentRun, type Run } from "../core/run.ts";
import { TaskState } from "../core/states.ts";
import {
  applyUpdate,
  LATENT_BROADCAST,
  newTask,
  type Task,
  TaskCreate,
  type TaskUpdate,
  type TaskView,
  taskView,
} from "../core/task.ts";
import { cloneBody, type TaskClone } from "../core/task-clone.ts";
import { MAX_Q, type TaskFind, type TaskListQuery } from "../core/task-query.ts";
import { updateRefusal } from "../core/task-rules.ts";
import { nowIso, ZERO_TIME } from "../core/time.ts";
import { judgeModule, type TrustGate } from "../core/trust-policy.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Dispatcher, StartResult } from "./dispatcher.ts";
import type { ManagerEvents } from "./events.ts";
import type { Schedules } from "./schedules.ts";

const log = tag("manager");

/** A listed task's results past this many characters of JSON are cut to a preview. */
export const RESULTS_PREVIEW_CHARS = 256;

/** Text a client gave, as it may be echoed in an error: control characters escaped (no terminal sequences). */
const printable = (s: string): string =>
  s.replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

export type ListedTask = TaskView & {
  proplet_name?: string;
  waiting_reason?: string;
  results_preview?: string;
  results_truncated?: true;
  results_size?: number;
};

/** The task with its results as they are when short, else the first RESULTS_PREVIEW_CHARS of their JSON. */
function previewResults(v: ListedTask): ListedTask {
  if (v.results === undefined || v.results === null) return v;
  const text = typeof v.results === "string" ? v.results : JSON.stringify(v.results);
  if (text.length <= RESULTS_PREVIEW_CHARS) return v;
  const { results: _, ...rest } = v;
  return {
    ...rest,
    results_preview: text.slice(0, RESULTS_PREVIEW_CHARS),
    results_truncated: true,
    results_size: Buffer.byteLength(text),
  };
}

// Task CRUD: create, read, list, update and delete, and the task's runs. Starting and stopping are the
// dispatcher's; a task with a schedule is armed by the schedules room.

export class Tasks {
  constructor(
    private store: Storage,
    private dispatcher: Dispatcher,
    private schedules: Schedules,
    private events: ManagerEvents,
    /** The largest inline module (`file`) accepted, in MiB (`serve --max-module-mb`). */
    private maxModuleMb = DEFAULT_MAX_MODULE_MB,
    private trust?: TrustGate,
  ) {}

  /**
   * Under a trust policy, a module the policy refuses is refused here (400 naming the rule and the scope); the
   * dispatch asks again (the policy or the tag may have changed by then).
   */
  private async checkTrust(
    input: { image_url?: string; file?: string; signature?: string },
    task?: { at?: string; id?: string },
    step: "create" | "update" = "create",
  ): Promise<void> {
    if (!this.trust) return;
    const j = await judgeModule(this.trust, input);
    if (j && !j.check.allowed) {
      this.events.trustRefused(step, j.module, j.check, task?.id);
      const field = `${task?.at ? `${task.at}.` : ""}${j.field}`;
      throw invalid(`${field}: ${task?.id ? `task ${task.id}: ` : ""}${j.check.reason}`);
    }
  }

  /** An inline module over the cap is refused here, naming `file`, rather than failing on the proplet later. */
  private checkModule(file: string | undefined): void {
    const big = file && moduleTooLarge(base64Bytes(file), this.maxModuleMb, "serve --max-module-mb");
    if (big) throw invalid(`file: ${big}`);
  }

  async create(input: TaskCreate): Promise<TaskView> {
    this.checkModule(input.file);
    await this.checkTrust(input);
    const created = newTask(crypto.randomUUID(), input, nowIso());
    this.store.tasks.create(created);
    const task = this.schedules.arm(created);
    await this.store.durable();
    this.events.taskChanged(task);
    log.debug(`task ${task.id} created (${task.name})`);
    return taskView(task);
  }

  /**
   * A new task copied from `id` with `patch` over it (`POST /tasks/{id}/clone`): the module comes along unless the
   * patch gives another; the copy is checked as a new task is.
   */
  async clone(id: string, patch: TaskClone): Promise<TaskView> {
    const r = TaskCreate.safeParse(cloneBody(this.mustGet(id), patch));
    if (!r.success) throw invalid(describeZodError(r.error));
    return this.create(r.data);
  }

  /**
   * Inserts the tasks of a job or workflow as they are (ids and depends_on already resolved); not committed. Every
   * member is judged by the trust policy first (`tasks[i].image_url: …`, naming the task): one refused, none is
   * created.
   */
  async insert(tasks: Task[]): Promise<void> {
    for (const t of tasks) this.checkModule(t.file);
    // Judged before the ids are checked: from there to the inserts nothing awaits, so two creations cannot race.
    for (const [i, t] of tasks.entries()) await this.checkTrust(t, { at: `tasks[${i}]`, id: t.local_id ?? t.id });
    for (const t of tasks) {
      if (this.store.tasks.get(t.id))
        throw conflict(`task id ${t.id} already exists: create a fresh copy (?fresh=true, --fresh) or change the id`);
    }
    for (const t of tasks) {
      this.store.tasks.create(t);
      this.schedules.arm(t);
    }
  }

  /**
   * The full id of a task given by its id, a unique prefix of it (at least 4 characters), or its name when no
   * other task has that name, as a person types it (`tasks create add … && tasks results add`; proplets take
   * names too); an unknown one is not found, an ambiguous one a conflict naming the candidates. A name that is
   * also a prefix of another task's id is ambiguous too: a task named `cafe` is not the task whose id starts
   * with cafe (`DELETE /tasks/cafe` deleted that one).
   */
  resolveId(idOrPrefix: string): string {
    if (this.store.tasks.get(idOrPrefix)) return idOrPrefix;
    const ids = idOrPrefix.length >= 4 ? this.store.tasks.idsStartingWith(idOrPrefix, 3) : [];
    const named = this.idsNamed(idOrPrefix);
    const given = printable(idOrPrefix);
    const list = (xs: string[]) => xs.map(printable).join(", ");
    if (ids.length > 0 && named.total > 0)
      throw conflict(
        `${given} is the start of task id ${list(ids.slice(0, 1))}${ids.length > 1 ? " (and others)" : ""} and the name of task ${list(named.ids.slice(0, 1))}${named.total > 1 ? " (and others)" : ""}: give the whole id`,
      );
    if (ids.length === 1) return ids[0]!;
    if (ids.length > 1) throw conflict(`task id ${given} is ambiguous (${list(ids)}…): give more of it`);
    if (named.total === 1) return named.ids[0]!;
    const whole = this.broadcastNamed(named);
    if (whole) return whole;
    if (named.total > 1) {
      throw conflict(
        `${named.total} tasks are named ${given} (newest first: ${list(named.ids.slice(0, 3))}${named.total > 3 ? ", …" : ""}): give one's id (a unique prefix of it is enough)`,
      );
    }
    throw notFound(`task ${given} not found`);
  }

  /**
   * A broadcast and its parts share its name: when they are all the tasks of that name, the name is the broadcast's
   * (`tasks get bc1` right after `tasks create bc1 --broadcast --start` was "4 tasks are named bc1").
   */
  private broadcastNamed(named: { total: number; ids: string[] }): string | undefined {
    const newest = named.ids[0] ? this.store.tasks.get(named.ids[0]) : undefined;
    const whole = newest?.broadcast_of ? this.store.tasks.get(newest.broadcast_of) : newest;
    return whole?.parts && whole.name === newest?.name && named.total === whole.parts.length + 1 ? whole.id : undefined;
  }

  /** The tasks named exactly `name`: how many, and the ids of the newest few. */
  private idsNamed(name: string): { total: number; ids: string[] } {
    if (name === "" || name.length > MAX_Q) return { total: 0, ids: [] };
    const found = this.store.tasks.find({ name, rounds: true, sort: "created_at", order: "desc" }, 0, 3);
    return { total: found.total, ids: found.items.map((t) => t.id) };
  }

  private mustGet(id: string): Task {
    const t = this.store.tasks.get(id);
    if (!t) throw notFound(`task ${id} not found`);
    return t;
  }

  /**
   * A task; one waiting to start says why (`waiting_reason`); one running on a proplet that is cut off says since
   * when (`proplet_unreachable_since`): it stays Running for the partition grace.
   */
  get(id: string): TaskView & { waiting_reason?: string; proplet_unreachable_since?: string } {
    const t = this.mustGet(id);
    const why = this.dispatcher.whyWaiting(t);
    if (why) return { ...this.view(t), waiting_reason: why };
    const since = this.dispatcher.unreachableSince(t);
    return since ? { ...this.view(t), proplet_unreachable_since: since } : this.view(t);
  }

  /** The API's view, with `proplet_name`: the proplet's name (its identity's) beside its id. */
  private view(t: Task): TaskView & { proplet_name?: string } {
    const name = t.proplet_id ? this.dispatcher.propletName(t.proplet_id) : undefined;
    return name ? { ...taskView(t), proplet_name: name } : taskView(t);
  }

  results(id: string): { results: unknown } {
    return { results: this.mustGet(id).results ?? null };
  }

  /**
   * `GET /tasks`: the tasks `q` finds (core/task-query.ts), each with a bounded preview of its results (an FL round's
   * result carries a model: the whole is at `/tasks/{id}/results`) and, while it waits, why.
   */
  list(offset: number, limit: number, q: TaskListQuery, metadata?: Record<string, string>): Page<ListedTask> {
    const { proplet, ...rest } = q;
    const find: TaskFind = { ...rest, ...(metadata ? { metadata } : {}) };
    // A proplet by id or name; the id as given too, for tasks that ran on a proplet since gone.
    if (proplet !== undefined) find.proplets = [...new Set([this.dispatcher.propletIdOf(proplet), proplet])];
    const r = this.store.tasks.find(find, offset, limit);
    return { offset, limit, total: r.total, items: r.items.map((t) => this.listed(t)) };
  }

  private listed(t: Task): ListedTask {
    const why = this.dispatcher.whyWaiting(t);
    const v: ListedTask = why ? { ...this.view(t), waiting_reason: why } : this.view(t);
    return previewResults(v);
  }

  runs(id: string, offset: number, limit: number): Page<Run> {
    const task = this.mustGet(id);
    // A running task's current run is not stored yet: it leads the list.
    const live = task.state === TaskState.Running && task.run_id ? [currentRun(task)] : [];
    const r = this.store.runs.listByTask(id, Math.max(0, offset - live.length), limit);
    const items = [...live.slice(offset), ...r.items].slice(0, limit);
    return { offset, limit, total: r.total + live.length, items };
  }

  async update(id: string, patch: TaskUpdate): Promise<TaskView> {
    // A new module (or signature) is judged first; the task is read again after, as it may have changed meanwhile.
    if (patch.file !== undefined || patch.image_url !== undefined || patch.signature !== undefined)
      await this.checkTrust(applyUpdate(this.mustGet(id), patch, nowIso()), { id }, "update");
    const task = this.mustGet(id);
    this.checkModule(patch.file);
    const newModule = patch.file !== undefined || patch.image_url !== undefined;
    if (task.state === TaskState.Running && newModule) {
      throw conflict(`task ${id} is running: stop it before changing its module`);
    }
    const swap = newModule && moduleChangeRefusal(task, this.groupOf(task));
    if (swap) throw conflict(swap);
    const next = applyUpdate(task, patch, nowIso());
    if (next.broadcast && next.pinned) throw invalid("proplet_id: broadcast and proplet_id are mutually exclusive");
    if (next.broadcast && next.latent) throw invalid(`${patch.latent ? "latent" : "broadcast"}: ${LATENT_BROADCAST}`);
    const refused = updateRefusal(task, patch, next);
    if (refused) throw invalid(refused);
    const scheduleChanged = patch.schedule !== undefined || patch.timezone !== undefined;
    if (scheduleChanged) {
      next.next_run = ZERO_TIME;
      if (!next.schedule) this.schedules.remove(id);
    }
    this.store.tasks.update(next, patch.file !== undefined);
    const stored = scheduleChanged ? this.schedules.arm(next) : next;
    this.dispatcher.requeue(stored);
    await this.store.durable();
    return taskView(stored);
  }

  /** The tasks of the job or workflow the task belongs to (none for a task of its own). */
  private groupOf(task: Task): Task[] {
    const group = task.workflow_id ?? task.job_id;
    return group ? this.store.tasks.listByGroup(task.workflow_id ? "workflow" : "job", group) : [];
  }

  async delete(id: string): Promise<void> {
    const task = this.mustGet(id);
    const refused = deleteRefusal(task, this.groupOf(task));
    if (refused) throw conflict(refused);
    await this.dispatcher.release(task);
    this.schedules.remove(id);
    // A broadcast's parts go with it (they were left behind, one per proplet per start, named as it).
    for (const part of task.parts ?? []) {
      const p = this.store.tasks.get(part);
      if (!p) continue;
      await this.dispatcher.release(p);
      this.store.tasks.delete(part);
    }
    this.store.tasks.delete(id);
    await this.store.durable();
    log.info(`task ${id} deleted${task.parts?.length ? ` with its ${task.parts.length} broadcast part(s)` : ""}`);
  }

  /** Pauses (or resumes) a task's schedule: `tasks pause`, `POST /tasks/{id}/pause`. */
  async pause(id: string, paused: boolean): Promise<TaskView> {
    const task = this.schedules.setPaused(this.mustGet(id), paused);
    await this.store.durable();
    return taskView(task);
  }

  start(id: string): Promise<StartResult> {
    return this.dispatcher.start(id);
  }

  /**
   * A user's stop, or one with its own reason (a closed FL round's). It ends the current run, not a schedule: a
   * scheduled task's answer says when it fires next (pause holds the schedule), where a plain "ok" read as all
   * stopped while the firings went on.
   */
  async stop(id: string, reason?: string): Promise<{ stopped: true; next_run?: string }> {
    const armed = (t: Task | undefined) => t?.schedule && !t.paused && t.next_run && t.next_run !== ZERO_TIME;
    const before = this.store.tasks.get(id);
    // Between its firings there is no run to stop: said with what holds the schedule.
    if (before && armed(before) && before.state !== TaskState.Running && before.state !== TaskState.Scheduled)
      throw conflict(
        `task ${id} is not running: its schedule fires next at ${before.next_run} (propeller tasks pause ${id} holds it)`,
      );
    const r = await this.dispatcher.stop(id, true, reason);
    const t = this.store.tasks.get(id);
    return armed(t) ? { ...r, next_run: t!.next_run } : r;
  }
}
