import { TaskState } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import { fields, tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { ExtraRuns } from "./extra-runs.ts";
import type { PropletRegistry } from "./proplets.ts";
import { ASK_GRACE_MS, HEARTBEAT_GRACE_MS, type RunControl, type RunFence } from "./run-control.ts";
import type { Timers } from "./timers.ts";

const log = tag("manager");

/** Extra time the manager gives a proplet to report a timed-out run before settling it itself. */
const TIMEOUT_GRACE_MS = 5000;

/**
 * Runs the manager settles itself, nothing stays Running forever: those on a proplet that is lost or no longer
 * lists them in its heartbeat, and those whose proplet never reports past their timeout.
 */
export class LostRuns {
  constructor(
    private store: Storage,
    private proplets: PropletRegistry,
    private extras: ExtraRuns,
    private timers: Timers,
    private ctl: RunControl,
    private fence: RunFence,
  ) {}

  /** The proplet enforces `timeout_s`; this settles the run if it never reports. */
  watchTimeout(id: string, runId: string, timeoutS: number): void {
    this.timers.set(id, timeoutS * 1000 + TIMEOUT_GRACE_MS, () => {
      const t = this.store.tasks.get(id);
      if (t?.state !== TaskState.Running || t.run_id !== runId) return;
      void this.ctl.sendStop(t.id, t.proplet_id);
      const error = `task timed out after ${timeoutS}s (no result from proplet ${t.proplet_id})`;
      this.ctl.endRun(t, { error, results: undefined });
    });
  }

  /**
   * Settles the runs a proplet no longer has ("proplet lost"), retried where retries remain; with `keep` (the
   * tasks a heartbeat lists), only the others, and only once their start had time to arrive.
   */
  settle(
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
        this.fence.unconfirmed.delete(id);
        if (t?.run_id) this.fence.asked.delete(t.run_id);
        continue;
      }
      if (!t || t.state !== TaskState.Running) {
        this.proplets.track(propletId, id, false);
        freed = true;
        continue;
      }
      if (keep && now - Date.parse(t.start_time) < HEARTBEAT_GRACE_MS) continue; // start may still be in flight
      // A proplet with a run record is asked, not guessed about: its start goes again, same run id, and the
      // proplet runs it only if it never received it, else answers with its result or a failure (start-again.ts).
      if (keep && connected && t.run_id && this.proplets.get(propletId)?.metadata.run_record === true) {
        if (this.ask(t, propletId, now)) continue;
      } else if (keep && this.fence.unconfirmed.delete(id)) {
        // A proplet without a record (upstream's) cannot say: its start is taken as lost in the hand-over. Should our
        // proplet's result of it come after all, it is kept as a run of its own (results.ts, unknownRun).
        log.warn(
          `task ${id}: its start was lost in the hand-over (proplet ${propletId} never ran it); starting it again`,
        );
        this.proplets.track(propletId, id, false);
        this.ctl.enqueue(t);
        continue;
      }
      log.warn(reason, fields({ task_id: id, run_id: t.run_id, proplet_id: propletId }));
      // A proplet still connected may still run it: tell it to stop, so no Wasm spins on as an orphan.
      if (connected) void this.ctl.sendStop(id, propletId);
      this.ctl.endRun(t, { error: reason, results: undefined });
    }
    this.extras.settleLost(propletId, reason, now, keep, connected, runs);
    if (freed) this.ctl.drain();
  }

  /** Asks the proplet about a run it no longer lists; true while its answer may still come. */
  private ask(t: Task, propletId: string, now: number): boolean {
    const runId = t.run_id!;
    const asked = this.fence.asked.get(runId);
    if (asked === undefined) {
      if (this.fence.asked.size >= MAX_ASKED) this.fence.asked.delete(this.fence.asked.keys().next().value!);
      this.fence.asked.set(runId, now);
      log.info(
        `proplet ${propletId} no longer lists the run: asking it (its start sent again, same run id)`,
        fields({ task_id: t.id, run_id: runId, proplet_id: propletId }),
      );
      void this.ctl.askAgain(t).catch(() => {});
      return true;
    }
    if (now - asked < ASK_GRACE_MS) return true;
    this.fence.asked.delete(runId);
    this.fence.unconfirmed.delete(t.id);
    return false;
  }
}

/** Runs asked about at once, at most (each is forgotten once answered, listed or settled). */
const MAX_ASKED = 100_000;
