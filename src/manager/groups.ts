import { decide, type GraphTask, groupState, validateDag } from "../core/dag.ts";
import { conflict, invalid, notFound } from "../core/errors.ts";
import type { Job, JobCreate, WorkflowCreate } from "../core/job.ts";
import type { Page } from "../core/page.ts";
import { isTerminal, STOPPED_BY_USER, stateName, TaskState } from "../core/states.ts";
import { type GroupTask, newTask, type Task, type TaskView, taskView } from "../core/task.ts";
import { isoAt, nowIso, ZERO_TIME } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { ManagerEvents } from "./events.ts";
import type { Tasks } from "./tasks.ts";

const log = tag("manager");

// Jobs and workflows: groups of tasks whose order is a DAG. When a task of a group reaches a final state, the
// tasks whose parents are all final start (or are skipped, per `run_if`; skips cascade at once). A job fails
// fast: its first failure stops its running tasks and skips the rest. Final states arrive on the event seam.

export interface GroupView {
  state: number;
  status: string;
  tasks: TaskView[];
  start_time: string;
  finish_time: string;
  created_at: string;
}

export type JobView = GroupView & { job_id: string; name: string; execution_mode: string };
export type WorkflowView = GroupView & { workflow_id: string; name?: string };

function summary(tasks: Task[]): GroupView {
  const state = groupState(tasks.map((t) => t.state));
  const times = (k: "start_time" | "finish_time" | "created_at") =>
    tasks
      .map((t) => t[k])
      .filter((v) => v && v !== ZERO_TIME)
      .sort();
  return {
    state,
    status: stateName(state),
    tasks: tasks.map(taskView),
    start_time: times("start_time")[0] ?? ZERO_TIME,
    finish_time: tasks.every((t) => isTerminal(t.state)) ? (times("finish_time").at(-1) ?? ZERO_TIME) : ZERO_TIME,
    created_at: times("created_at")[0] ?? ZERO_TIME,
  };
}

/** A workflow's view: its name is the one its tasks were given (none for a workflow made of single tasks). */
function workflowView(id: string, tasks: Task[]): WorkflowView {
  const name = tasks.find((t) => t.workflow_name)?.workflow_name;
  return { workflow_id: id, ...(name ? { name } : {}), ...summary(tasks) };
}

/** `?status=` of the job and workflow listings: the group state it names. */
const GROUP_STATUS: Record<string, number> = {
  pending: TaskState.Pending,
  running: TaskState.Running,
  completed: TaskState.Completed,
  failed: TaskState.Failed,
  interrupted: TaskState.Interrupted,
};

export class Groups {
  constructor(
    private store: Storage,
    private tasks: Tasks,
    private dispatcher: Dispatcher,
    events: ManagerEvents,
  ) {
    events.taskFinal.subscribe((t) => this.onFinal(t));
  }

  /**
   * Gives every task an id (the client's, as upstream, else a new one) and checks the graph; with `scope` (a fresh
   * copy of a file, core/job.ts `Fresh`) the client's ids are stored as `<scope>.<id>`.
   */
  private buildTasks(
    input: GroupTask[],
    group: { job_id?: string; workflow_id?: string; workflow_name?: string },
    scope?: string,
  ): Task[] {
    // Each task a millisecond after the one before: the order of a group's tasks (a sequential job's) is the
    // order they were stored in, which every listing by creation keeps, and so does a backup (tasks made in one
    // millisecond came back from a restore in the order of their ids: a sequential job ran its second task first).
    const base = Date.now();
    const ids = input.map((t) => t.id ?? crypto.randomUUID());
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup) throw invalid(`tasks: id ${dup} is used twice`);
    const err = validateDag(input.map((t, i) => ({ id: ids[i]!, depends_on: t.depends_on })));
    if (err) throw invalid(`tasks: ${err}`);
    // A fresh copy's ids are its own: stored as `<group id>.<id>`, so one file makes many groups; the task keeps
    // the file's id as `local_id`, by which its children get its results.
    const local = new Set(input.map((t) => t.id));
    const stored = (id: string) => (scope && local.has(id) ? `${scope}.${id}` : id);
    return input.map((t, i) => {
      const { id: localId, ...rest } = t;
      const deps = rest.depends_on?.map(stored);
      const fields = { ...rest, ...(deps ? { depends_on: deps } : {}) };
      const task = { ...newTask(stored(ids[i]!), fields, isoAt(base + i)), ...group };
      return scope && localId ? { ...task, local_id: localId } : task;
    });
  }

  // ---- jobs ----

  async createJob(input: JobCreate, fresh = false): Promise<JobView> {
    const job: Job = {
      id: crypto.randomUUID(),
      name: input.name,
      execution_mode: input.execution_mode,
      created_at: nowIso(),
    };
    const tasks = this.buildTasks(input.tasks, { job_id: job.id }, fresh ? job.id : undefined);
    await this.tasks.insert(tasks);
    this.store.jobs.create(job);
    await this.store.durable();
    log.info(`job ${job.id} created (${job.name}, ${job.execution_mode}, ${tasks.length} tasks)`);
    return this.getJob(job.id);
  }

  private mustJob(id: string): Job {
    const j = this.store.jobs.get(id);
    if (!j) throw notFound(`job ${id} not found`);
    return j;
  }

  getJob(id: string): JobView {
    return this.jobView(this.mustJob(id));
  }

  private jobView(job: Job): JobView {
    return {
      job_id: job.id,
      name: job.name,
      execution_mode: job.execution_mode,
      ...summary(this.store.tasks.listByGroup("job", job.id)),
    };
  }

  listJobs(offset: number, limit: number, status?: string): Page<JobView> {
    const want = status ? GROUP_STATUS[status] : undefined;
    const all = this.store.jobs
      .all()
      .map((j) => this.jobView(j))
      .filter((v) => want === undefined || v.state === want);
    return { offset, limit, total: all.length, items: all.slice(offset, offset + limit) };
  }

  /** The order of a group's tasks: a sequential job chains them in creation order, the others use depends_on. */
  private graph(tasks: Task[], job?: Job): GraphTask[] {
    return tasks.map((t, i) => {
      const deps = job?.execution_mode === "sequential" ? (i > 0 ? [tasks[i - 1]!.id] : []) : (t.depends_on ?? []);
      return { id: t.id, state: t.state, run_if: job ? undefined : t.run_if, depends_on: deps };
    });
  }

  /**
   * Starts a group's roots. A group that ran before runs again whole: every task that ended waits again first
   * (its runs stay in its history). Only its roots were started again, and the rest, ended already, never ran:
   * a stopped sequential job re-ran its first task and stalled.
   */
  private async startGroup(tasks: Task[], graphOf: (tasks: Task[]) => GraphTask[], what: string): Promise<number> {
    if (tasks.some((t) => t.state === TaskState.Running || t.state === TaskState.Scheduled))
      throw conflict(`${what} is already running`);
    const again = tasks.map((t) => this.dispatcher.reset(t.id) ?? t);
    for (const [i, g] of graphOf(again).entries()) {
      if (g.depends_on!.length === 0) await this.dispatcher.start(again[i]!.id);
    }
    // How many had ended and run again: said in the answer (a start of a finished group said only "ok").
    return tasks.filter((t) => isTerminal(t.state)).length;
  }

  async startJob(id: string): Promise<{ message: string; job_id: string; rerun?: number }> {
    const job = this.mustJob(id);
    const rerun = await this.startGroup(
      this.store.tasks.listByGroup("job", id),
      (ts) => this.graph(ts, job),
      `job ${id}`,
    );
    return { message: "job started", job_id: id, ...(rerun ? { rerun } : {}) };
  }

  async stopJob(id: string): Promise<{ message: string; job_id: string }> {
    this.mustJob(id);
    await this.stopGroup(this.store.tasks.listByGroup("job", id), `job ${id} was stopped`, true);
    await this.store.durable();
    return { message: "job stopped", job_id: id };
  }

  /**
   * What waits ends first, all of it, before any running task is stopped: a stopped task's end makes its
   * workflow progress, which would otherwise decide the waiting children of a group stopped half-way.
   * `byUser`: every task not yet ended ends Interrupted ("stopped by user"), and so does the group; else (a job
   * failing fast) those waiting are Skipped and those running Failed.
   */
  private async stopGroup(tasks: Task[], reason: string, byUser: boolean): Promise<void> {
    for (const t of tasks) {
      if (t.state === TaskState.Running) continue;
      if (byUser) this.dispatcher.skip(t.id, `${STOPPED_BY_USER} before it started (${reason})`, TaskState.Interrupted);
      else this.dispatcher.skip(t.id, reason);
    }
    for (const t of tasks) {
      if (t.state === TaskState.Running) await this.dispatcher.stop(t.id, byUser).catch(() => {});
    }
  }

  // ---- workflows ----

  async createWorkflow(input: WorkflowCreate, fresh = false): Promise<WorkflowView> {
    const given = fresh ? undefined : input.tasks.find((t) => t.workflow_id)?.workflow_id;
    if (given && this.store.tasks.listByGroup("workflow", given).length > 0)
      throw conflict(`workflow ${given} already exists: create a fresh copy (?fresh=true, --fresh) or change its id`);
    const workflowId = given ?? crypto.randomUUID();
    const group = { workflow_id: workflowId, ...(input.name ? { workflow_name: input.name } : {}) };
    const tasks = this.buildTasks(input.tasks, group, fresh ? workflowId : undefined);
    await this.tasks.insert(tasks);
    await this.store.durable();
    log.info(`workflow ${workflowId} created (${input.name ? `${input.name}, ` : ""}${tasks.length} tasks)`);
    return this.getWorkflow(workflowId);
  }

  /** Every workflow, newest first (`GET /workflows`); `status` as for jobs. */
  listWorkflows(offset: number, limit: number, status?: string): Page<WorkflowView> {
    const want = status ? GROUP_STATUS[status] : undefined;
    const all = this.store.tasks
      .groupIds("workflow")
      .map((id) => workflowView(id, this.store.tasks.listByGroup("workflow", id)))
      .filter((v) => want === undefined || v.state === want)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
    return { offset, limit, total: all.length, items: all.slice(offset, offset + limit) };
  }

  getWorkflow(id: string): WorkflowView {
    const tasks = this.store.tasks.listByGroup("workflow", id);
    if (tasks.length === 0) throw notFound(`workflow ${id} not found`);
    return workflowView(id, tasks);
  }

  async startWorkflow(id: string): Promise<{ started: true; workflow_id: string; rerun?: number }> {
    const tasks = this.store.tasks.listByGroup("workflow", id);
    if (tasks.length === 0) throw notFound(`workflow ${id} not found`);
    const rerun = await this.startGroup(tasks, (ts) => this.graph(ts), `workflow ${id}`);
    return { started: true, workflow_id: id, ...(rerun ? { rerun } : {}) };
  }

  /** Stops a workflow: its running tasks are stopped (Interrupted) and those not yet run are skipped. */
  async stopWorkflow(id: string): Promise<{ message: string; workflow_id: string }> {
    const tasks = this.store.tasks.listByGroup("workflow", id);
    if (tasks.length === 0) throw notFound(`workflow ${id} not found`);
    await this.stopGroup(tasks, `workflow ${id} was stopped`, true);
    await this.store.durable();
    return { message: "workflow stopped", workflow_id: id };
  }

  // ---- progress ----

  private onFinal(t: Task): void {
    if (t.job_id) {
      const job = this.store.jobs.get(t.job_id);
      const tasks = this.store.tasks.listByGroup("job", t.job_id);
      // A user's stop of one of its tasks stops the job as a user's stop (its tasks end Interrupted), not as a
      // failure: the job's own stop comes here too, once for each task it stops.
      if (t.state === TaskState.Interrupted && t.error?.startsWith(STOPPED_BY_USER)) {
        void this.stopGroup(tasks, `job ${t.job_id} was stopped at task ${t.id}`, true);
        return;
      }
      if (t.state === TaskState.Failed || t.state === TaskState.Interrupted) {
        log.info(`job ${t.job_id}: task ${t.id} failed; stopping the job`);
        void this.stopGroup(tasks, `job ${t.job_id} failed at task ${t.id}`, false);
        return;
      }
      this.progress(this.graph(tasks, job));
    }
    if (t.workflow_id) {
      const tasks = this.store.tasks.listByGroup("workflow", t.workflow_id);
      this.progress(this.graph(tasks));
    }
  }

  private progress(graph: GraphTask[]): void {
    const d = decide(graph);
    for (const id of d.skip) this.dispatcher.skip(id, d.why[id] ?? "its run_if condition is not met");
    for (const id of d.start) {
      this.dispatcher
        .start(id)
        .catch((e) => log.warn(`task ${id}: could not start: ${e instanceof Error ? e.message : e}`));
    }
  }

  /** After a restart: continue started groups whose next steps were lost with the crash. */
  resume(): void {
    for (const job of this.store.jobs.all()) {
      const tasks = this.store.tasks.listByGroup("job", job.id);
      if (tasks.some((t) => t.state !== TaskState.Pending)) this.progress(this.graph(tasks, job));
    }
    for (const id of this.store.tasks.groupIds("workflow")) {
      const tasks = this.store.tasks.listByGroup("workflow", id);
      if (tasks.some((t) => t.state !== TaskState.Pending)) this.progress(this.graph(tasks));
    }
  }
}
