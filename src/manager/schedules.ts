import { nextRun } from "../core/cron.ts";
import { invalid } from "../core/errors.ts";
import { TaskState } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import { nowIso, ZERO_TIME } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import { CronRunner } from "./cron.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { ManagerEvents } from "./events.ts";
import { saveTask } from "./run-end.ts";

const log = tag("manager");

// Cron: tasks with a `schedule` are started by their firings. `next_run` is stored before each firing, so a
// restart never fires twice; `misfire_policy` decides about firings missed while the manager was down, and
// `overlap_policy` about firings that find the previous run still active ("allow" runs it beside that run, or when
// it ends if no proplet has a free slot).

export class Schedules {
  private cron: CronRunner;
  /** Firings that found the task busy under overlap_policy "allow": run once it ends. */
  private pendingFire = new Set<string>();

  constructor(
    private store: Storage,
    private dispatcher: Dispatcher,
    private events: ManagerEvents,
    /** Sees every firing as it starts (the cron benchmark measures drift with it). */
    observe?: (id: string, dueAt: number) => void,
  ) {
    this.cron = new CronRunner((id, at) => {
      observe?.(id, at);
      void this.fire(id, at);
    });
    events.taskFinal.subscribe((t) => {
      if (this.pendingFire.delete(t.id) && t.schedule) void this.startScheduled(t.id);
    });
  }

  /** Arms every stored schedule after a start or a crash; a firing missed meanwhile follows misfire_policy. */
  recover(): void {
    for (const t of this.store.tasks.listScheduled()) this.armTask(t, true);
  }

  /** Computes and stores next_run and arms the timer; returns the task as stored. */
  arm(task: Task): Task {
    return this.armTask(task, false);
  }

  remove(id: string): void {
    this.cron.remove(id);
  }

  /** Pauses or resumes a task's schedule; a resumed one fires next at its next time from now. */
  setPaused(task: Task, paused: boolean): Task {
    if (!task.schedule) throw invalid(`task ${task.id} has no schedule to ${paused ? "pause" : "resume"}`);
    const next: Task = { ...task, paused, next_run: ZERO_TIME, updated_at: nowIso() };
    if (paused) {
      this.cron.remove(task.id);
      this.store.tasks.update(next);
      log.info(`task ${task.id}: schedule paused`);
      return next;
    }
    log.info(`task ${task.id}: schedule resumed`);
    this.store.tasks.update(next);
    return this.armTask(next, false);
  }

  stop(): void {
    this.cron.stop();
  }

  private armTask(task: Task, atStartup: boolean): Task {
    if (!task.schedule || task.paused) return task;
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
    if (atStartup && Number.isFinite(stored) && stored <= now && !task.is_recurring) return this.missed(task, now);
    const next = nextRun(task.schedule, task.timezone, new Date(now));
    const iso = next ? next.toISOString() : ZERO_TIME;
    const armed = iso === task.next_run ? task : { ...task, next_run: iso };
    // The module column is left alone, so a task read without it is fine.
    if (armed !== task) this.store.tasks.update(armed);
    if (next) this.cron.set(task.id, next.getTime());
    return armed;
  }

  /**
   * A one-time firing missed while the manager was down, under misfire_policy "skip": the schedule ends and the
   * task is Skipped, saying why. Its time was armed again from now, which for a date and time is a year on: the
   * task waited Pending for next year and nothing said so.
   */
  private missed(task: Task, now: number): Task {
    const why = `its one-time schedule (${task.next_run}) was missed while the manager was down; misfire_policy skip: not run (run_once runs it late)`;
    log.warn(`task ${task.id}: ${why}`);
    const at = new Date(now).toISOString();
    const ended: Task = { ...task, schedule: undefined, next_run: ZERO_TIME, updated_at: at };
    // Only a task that never ran is Skipped: one started by hand meanwhile keeps its state and its result (it was
    // Skipped showing the result of its run).
    const skipped: Task =
      task.state === TaskState.Pending ? { ...ended, state: TaskState.Skipped, error: why, finish_time: at } : ended;
    saveTask(this.store, this.events, skipped, task.state);
    return skipped;
  }

  private async fire(id: string, at: number): Promise<void> {
    const task = this.store.tasks.get(id);
    if (!task?.schedule || task.paused) return;
    // Advance next_run (or end a one-shot schedule) before starting, so a crash cannot fire it twice.
    const next = task.is_recurring
      ? nextRun(task.schedule, task.timezone, new Date(Math.max(at, Date.now())))
      : undefined;
    const updated: Task = task.is_recurring
      ? { ...task, next_run: next?.toISOString() ?? ZERO_TIME }
      : { ...task, schedule: undefined, next_run: ZERO_TIME };
    this.store.tasks.update(updated);
    if (next) this.cron.set(id, next.getTime());
    const busy = task.state === TaskState.Running || task.state === TaskState.Scheduled;
    if (busy) {
      const allow = task.overlap_policy === "allow";
      // Runs tell their results apart by run id, so an "allow" firing runs now beside the active run when a
      // proplet has a slot for it; else it runs when that run ends.
      if (allow && task.state === TaskState.Running && this.dispatcher.startExtra(id)) {
        await this.store.durable();
        return;
      }
      if (allow) this.pendingFire.add(id);
      log.info(`task ${id}: cron firing while the previous run is active: ${allow ? "runs when it ends" : "skipped"}`);
      await this.store.durable();
      return;
    }
    await this.startScheduled(id);
  }

  private async startScheduled(id: string): Promise<void> {
    try {
      await this.dispatcher.start(id);
      log.debug(`task ${id} fired by its schedule`);
    } catch (e) {
      log.warn(`task ${id}: scheduled start failed: ${e instanceof Error ? e.message : e}`);
    }
  }
}
