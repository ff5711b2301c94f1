import type { ResultMsg } from "../core/messages.ts";
import { Folded } from "../core/once-per.ts";
import { errorOf, withOutcome } from "../core/run.ts";
import { INTERRUPTED_BY_SHUTDOWN, TaskState } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import { nowIso } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { ExtraRuns } from "./extra-runs.ts";
import type { RunControl, RunFence } from "./run-control.ts";

const log = tag("manager");

/**
 * The intake of proplets' results, fenced by run: a result ends the run it names (the current one, or one started
 * beside it); one for a run that is over is a late result, kept on that run only, or a repeat, dropped.
 */
export class RunResults {
  private folds = new Folded(10_000);

  constructor(
    private store: Storage,
    private extras: ExtraRuns,
    private ctl: RunControl,
    private fence: RunFence,
  ) {}

  /** A proplet's result for the run it is running. */
  onResult(msg: ResultMsg): void {
    const task = this.store.tasks.get(msg.task_id);
    if (!task) {
      // Folded per proplet: one sending results for made-up tasks was 50,000 lines a second.
      const more = this.folds.say(msg.proplet_id ?? "", Date.now());
      if (more !== undefined)
        log.warn(
          `result for unknown task ${msg.task_id.slice(0, 128)} from proplet ${msg.proplet_id ?? "(unnamed)"} dropped${more}`,
        );
      return;
    }
    // An answer about the run comes from the proplet it runs on: another's result naming it (it may know the run
    // id) must not reset the fence's wait, or it could keep a run Running and its start sent again for ever.
    if (!msg.proplet_id || !task.proplet_id || msg.proplet_id === task.proplet_id) {
      this.fence.unconfirmed.delete(msg.task_id);
      if (msg.run_id) this.fence.asked.delete(msg.run_id);
    }
    const extra = msg.run_id ? this.extras.get(msg.run_id) : undefined;
    if (extra) {
      // Every proplet sees every start message, run ids included: only the run's own proplet may end it.
      if (msg.proplet_id && msg.proplet_id !== extra.proplet) {
        log.warn(
          `task ${task.id}: result for run ${msg.run_id} from proplet ${msg.proplet_id} ignored, it runs on ${extra.proplet}`,
        );
        return;
      }
      this.extras.end(msg.run_id!, msg.results, msg.error);
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
    const asked = this.fence.stopping.get(task.id);
    this.fence.stopping.delete(task.id);
    if (asked && errorOf(msg.error)) {
      this.ctl.endRun(task, {
        results: msg.results,
        error: asked,
        final: true,
        state: TaskState.Interrupted,
      });
    } else
      this.ctl.endRun(task, { results: msg.results, error: msg.error, final: asked !== undefined, fromProplet: true });
  }

  /**
   * A result for a run that is no longer the task's current one. A run the manager settled (its proplet was
   * unreachable past the grace, or timed out) takes the proplet's outcome as its own, once; the task keeps its
   * state (one final result per start). Anything else is a repeat (QoS 1 may deliver twice) and is dropped.
   */
  private lateResult(task: Task, msg: ResultMsg, runId: string): void {
    const run = this.store.runs.get(task.id, runId);
    if (!run) {
      this.unknownRun(task, msg, runId);
      return;
    }
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
   * A result for a run this manager has no record of (started by another manager before a hand-over, say): the
   * guest ran, so it gets a run of its own with that outcome, beside the task's current one, which it never
   * changes. Bounded, so a proplet cannot fill the runs table (and the disk) by inventing run ids: per task, in all
   * (never reset while this manager runs), and in bytes (results and error beyond 64 KiB are not kept, said so).
   */
  private unknownRun(task: Task, msg: ResultMsg, runId: string): void {
    // Only from a proplet the task was given (its current run's, or one of its recent runs'): any proplet that
    // knew a task's id wrote forged runs into its history, and spent the budget below meant for real ones.
    const from = msg.proplet_id;
    if (!from || !this.wasGiven(task, from)) {
      // Said once per proplet (bounded as the other sets here): a flood of forged results is not a flood of lines.
      const who = from ?? "";
      if (!this.strangersSaid.has(who) && this.strangersSaid.size < MAX_UNKNOWN_RUNS) {
        this.strangersSaid.add(who);
        log.warn(
          `task ${task.id}: result for run ${runId} from ${from ? `proplet ${from}` : "no proplet"} dropped: the task was never given to it (said once per proplet)`,
        );
      }
      return;
    }
    const n = this.unknown.get(task.id) ?? 0;
    const byProplet = this.unknownByProplet.get(from) ?? 0;
    if (
      n >= MAX_UNKNOWN_RUNS_PER_TASK ||
      byProplet >= MAX_UNKNOWN_RUNS_PER_PROPLET ||
      this.unknownTotal >= MAX_UNKNOWN_RUNS
    ) {
      // Said once per task (a flood of them is not a flood of log lines).
      if (!this.unknownDropped.has(task.id) && this.unknownDropped.size < MAX_UNKNOWN_RUNS) {
        this.unknownDropped.add(task.id);
        log.warn(
          `task ${task.id}: results for unknown runs dropped from now on (${n} such runs kept for it, ${this.unknownTotal} in all)`,
        );
      }
      return;
    }
    this.unknown.set(task.id, n + 1);
    this.unknownByProplet.set(from, byProplet + 1);
    this.unknownTotal++;
    const now = nowIso();
    const size = JSON.stringify(msg.results ?? null).length;
    const keep = size <= MAX_UNKNOWN_RESULT_CHARS;
    const error =
      msg.error && msg.error.length > MAX_UNKNOWN_RESULT_CHARS
        ? `${msg.error.slice(0, MAX_UNKNOWN_RESULT_CHARS)}… (error cut at ${MAX_UNKNOWN_RESULT_CHARS} characters)`
        : msg.error;
    const run = withOutcome(
      {
        run_id: runId,
        task_id: task.id,
        attempt: task.attempt ?? 1,
        state: TaskState.Running,
        status: "Running",
        ...(msg.proplet_id ? { proplet_id: msg.proplet_id } : {}),
        started_at: now,
      },
      keep ? msg.results : undefined,
      error,
    );
    const why = `no run with this id was known to the manager when its result came${keep ? "" : `; its results (${size} characters) were not kept (over ${MAX_UNKNOWN_RESULT_CHARS})`}`;
    this.store.runs.create({ ...run, finished_at: now, late_at: now, settled_error: why });
    log.warn(`task ${task.id}: result for a run it did not know (${runId}); kept as a run of its own (${run.status})`);
  }

  /** Whether the task was dispatched to this proplet: its current run, or one of its newest runs, is there. */
  private wasGiven(task: Task, propletId: string): boolean {
    if (task.proplet_id === propletId) return true;
    return this.store.runs.listByTask(task.id, 0, RUNS_LOOKED_AT).items.some((r) => r.proplet_id === propletId);
  }

  /** Runs made by `unknownRun`, by task, by proplet, and in all, since this manager started. */
  private unknown = new Map<string, number>();
  private unknownByProplet = new Map<string, number>();
  private unknownTotal = 0;
  /** Proplets whose results for tasks never given to them were dropped (said once each). */
  private strangersSaid = new Set<string>();
  /** Tasks whose unknown runs were dropped (said once each). */
  private unknownDropped = new Set<string>();
}

/** Runs one task may gain from results for run ids the manager did not know, per manager process. */
const MAX_UNKNOWN_RUNS_PER_TASK = 100;
/** Such runs in all, per manager process (a hand-over leaves a few; a proplet inventing them, many). */
const MAX_UNKNOWN_RUNS = 2000;
/** Such runs from one proplet: one proplet cannot spend the whole budget of the site's others. */
const MAX_UNKNOWN_RUNS_PER_PROPLET = 200;
/** A task's runs looked at for the proplets it was given to (the newest: a hand-over's run is recent). */
const RUNS_LOOKED_AT = 50;
/** Results (as JSON) and error kept on such a run, in characters: 2,000 of them stay within ~256 MiB. */
const MAX_UNKNOWN_RESULT_CHARS = 64 * 1024;
