import { parentResults, startMessage } from "../core/messages.ts";
import { canHost } from "../core/requirements.ts";
import type { Run } from "../core/run.ts";
import { withOutcome } from "../core/run.ts";
import { leastLoaded } from "../core/scheduler.ts";
import { STOPPED_BY_USER, TaskState } from "../core/states.ts";
import { nowIso } from "../core/time.ts";
import { fields, tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { PropletRegistry } from "./proplets.ts";
import { HEARTBEAT_GRACE_MS, type ManagerBus, publishFailed, type RunControl } from "./run-control.ts";

const log = tag("manager");

/** A run started beside its task's current one. */
export interface ExtraRun {
  task: string;
  proplet: string;
  startedAt: number;
}

/**
 * Runs of a task beside its current one, by run id: a cron firing under `overlap_policy: allow` that found the
 * task running starts one at once. Its run record is stored Running when it starts and completed by its own
 * result (fenced by run id); the task's state follows its current run only.
 */
export class ExtraRuns {
  private runs = new Map<string, ExtraRun>();

  constructor(
    private store: Storage,
    private bus: ManagerBus,
    private proplets: PropletRegistry,
    private ctl: RunControl,
  ) {}

  get(runId: string): ExtraRun | undefined {
    return this.runs.get(runId);
  }

  /**
   * Starts one more run of a Running task at once, beside its current one, on a proplet with a free slot that
   * meets its requirements (the current run's own proplet too, which runs both). False when none has a slot.
   */
  start(id: string): boolean {
    const task = this.store.tasks.get(id);
    if (!task || task.state !== TaskState.Running) return false;
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
    this.runs.set(runId, { task: id, proplet: chosen.id, startedAt: Date.now() });
    this.proplets.trackExtra(chosen.id, runId, true);
    const msg = startMessage(
      { ...task, proplet_id: chosen.id, run_id: runId, attempt: 1 },
      parentResults(task, (d) => this.store.tasks.get(d)),
    );
    void this.store
      .durable()
      .then(() => this.bus.start(msg))
      .catch((e) => this.end(runId, undefined, publishFailed(e), true));
    log.info("run started beside the current one", fields({ task_id: id, run_id: runId, proplet_id: chosen.id }));
    return true;
  }

  /** Ends a run started by `start`: its own result, or settled by the manager (`settled`). */
  end(runId: string, results: unknown, error: string | null | undefined, settled = false): void {
    const extra = this.runs.get(runId);
    if (!extra) return;
    this.runs.delete(runId);
    this.proplets.trackExtra(extra.proplet, runId, false);
    const stored = this.store.runs.get(extra.task, runId);
    if (stored) {
      const ended = { ...withOutcome(stored, results, error), finished_at: nowIso() };
      this.store.runs.update(settled ? { ...ended, settled: true } : ended);
    }
    this.ctl.drain();
  }

  /** Stops the runs started beside a task's current one (the task is stopped or deleted). */
  stopFor(taskId: string): void {
    for (const [runId, e] of this.runs) {
      if (e.task !== taskId) continue;
      const p = this.proplets.get(e.proplet);
      if (p && this.proplets.alive(p)) void this.ctl.sendStop(taskId, e.proplet);
      else this.end(runId, undefined, `${STOPPED_BY_USER} (its proplet is not alive)`, true);
    }
  }

  /** Settles the extra runs a proplet no longer has (see `LostRuns.settle`). */
  settleLost(
    propletId: string,
    reason: string,
    now: number,
    keep: Set<string> | undefined,
    connected: boolean,
    runs: { runs: Set<string>; wholeTasks: Set<string> } | undefined,
  ): void {
    for (const [runId, e] of this.runs) {
      if (e.proplet !== propletId) continue;
      if (keep && (runs ? runs.runs.has(runId) || runs.wholeTasks.has(e.task) : keep.has(e.task))) continue;
      if (keep && now - e.startedAt < HEARTBEAT_GRACE_MS) continue;
      if (connected) void this.ctl.sendStop(e.task, propletId);
      this.end(runId, undefined, reason, true);
    }
  }
}
