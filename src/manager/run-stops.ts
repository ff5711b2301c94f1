import { conflict } from "../core/errors.ts";
import { INTERRUPTED_BY_SHUTDOWN, TaskState } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import { fields, tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { PropletRegistry } from "./proplets.ts";
import type { ManagerBus, RunControl, RunEnd, RunFence } from "./run-control.ts";

const log = tag("manager");

// How a task's run is stopped, one task (a user's stop, a job failing fast, a closed FL round) or all of them (a
// graceful shutdown). A run on an alive proplet ends when the proplet answers the stop (results.ts reads the
// fence); any other ends here at once.

export class RunStops {
  constructor(
    private store: Storage,
    private bus: ManagerBus,
    private proplets: PropletRegistry,
    private fence: RunFence,
    private ctl: Pick<RunControl, "endRun" | "sendStop"> & {
      /** The task leaves the queue and its timers. */
      forget(id: string): void;
    },
  ) {}

  /**
   * Stops a Scheduled or Running task. With `said` (a user's stop, a closed FL round) it ends Interrupted saying
   * so; without (a job failing fast) it ends as a stopped run.
   */
  async stop(task: Task, said: string | undefined): Promise<void> {
    const id = task.id;
    const ended = (why: string): RunEnd =>
      said
        ? { error: `${said}${why}`, results: undefined, final: true, state: TaskState.Interrupted }
        : { error: `task stopped${why}`, results: undefined, final: true };
    if (task.state === TaskState.Scheduled) {
      // Not on a proplet yet: leave the queue (and any pending retry) and end as stopped.
      this.ctl.forget(id);
      this.ctl.endRun(task, ended(" before it started"));
    } else {
      if (task.state !== TaskState.Running) throw conflict(`task ${id} is not running`);
      const p = task.proplet_id ? this.proplets.get(task.proplet_id) : undefined;
      // Nobody answers a stop sent to a proplet that is gone: settle it here, not left Running. One that is only
      // cut off hears the stop when it is back (its session keeps it).
      if (!p || !this.proplets.alive(p)) {
        if (p) void this.ctl.sendStop(id, p.id);
        this.ctl.endRun(task, ended(" (its proplet is not alive)"));
      } else {
        this.fence.stopping.set(id, said ?? false); // its "task stopped" result ends the retry series
        await this.bus.stop({ id, broadcast: false, proplet_id: p.id });
      }
    }
    await this.store.durable();
    log.info("task stop requested", fields({ task_id: id }));
  }

  /** Graceful shutdown: running tasks are stopped and marked Interrupted, as upstream. */
  async shutdown(): Promise<void> {
    for (const t of this.store.tasks.listByState([TaskState.Running])) {
      // Ended before the stop is sent: the proplet's answer to the stop (which may come at once, from a proplet
      // still preparing the run) is then a result for a finished run, not the run's end.
      const interrupted = { error: INTERRUPTED_BY_SHUTDOWN, results: undefined, final: true };
      this.ctl.endRun(t, { ...interrupted, state: TaskState.Interrupted });
      if (t.proplet_id) await this.ctl.sendStop(t.id, t.proplet_id);
    }
  }
}
