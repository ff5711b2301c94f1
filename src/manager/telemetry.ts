import { notFound } from "../core/errors.ts";
import type { PropletMetricsMsg, TaskMetricsMsg } from "../core/messages.ts";
import type { Page } from "../core/page.ts";
import { TaskState } from "../core/states.ts";
import { nowIso } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { ManagerEvents } from "./events.ts";
import type { PropletRegistry } from "./proplets.ts";

const log = tag("manager");

// Telemetry: the metrics samples proplets send (stored with a bound, paged back), and the run counters and
// figures behind `GET /metrics`. Counters follow the run events on the seam; nothing here changes a task.

export interface RunCounters {
  starts: number;
  completions: number;
  failures: number;
  /** Runs stopped by a user or a shutdown: neither completed nor failed. */
  interruptions: number;
}

export class Telemetry {
  /** Totals since start. */
  readonly counters: RunCounters = { starts: 0, completions: 0, failures: 0, interruptions: 0 };

  constructor(
    private store: Storage,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
  ) {
    events.runStarted.subscribe(() => this.counters.starts++);
    events.runEnded.subscribe(({ run }) => {
      if (run.state === TaskState.Failed) this.counters.failures++;
      else if (run.state === TaskState.Interrupted) this.counters.interruptions++;
      else this.counters.completions++;
    });
  }

  onPropletMetrics(msg: PropletMetricsMsg): void {
    if (!this.proplets.has(msg.proplet_id)) return;
    const at = sampleTime(msg.timestamp);
    this.store.metrics.addProplet(msg.proplet_id, at, { ...msg, timestamp: at });
    if (this.events.live.listeners) {
      this.events.live.publish({ type: "metrics", kind: "proplet", proplet_id: msg.proplet_id, sample: msg, at });
    }
  }

  /** Samples only for a task that runs on the proplet sending them: anything else would be stored for nothing. */
  onTaskMetrics(msg: TaskMetricsMsg): void {
    const task = this.store.tasks.get(msg.task_id);
    if (!task || task.proplet_id !== msg.proplet_id) {
      log.debug(`task metrics for ${msg.task_id} from ${msg.proplet_id} dropped: not its task`);
      return;
    }
    const at = sampleTime(msg.timestamp);
    this.store.metrics.addTask(msg.task_id, at, { ...msg, timestamp: at });
    if (this.events.live.listeners) {
      const { proplet_id, task_id } = msg;
      this.events.live.publish({ type: "metrics", kind: "task", proplet_id, task_id, sample: msg, at });
    }
  }

  propletMetrics(id: string, offset: number, limit: number): Page<unknown> {
    if (!this.proplets.has(id)) throw notFound(`proplet ${id} not found`);
    return { offset, limit, ...this.store.metrics.listProplet(id, offset, limit) };
  }

  taskMetrics(id: string, offset: number, limit: number): Page<unknown> {
    if (!this.store.tasks.get(id)) throw notFound(`task ${id} not found`);
    return { offset, limit, ...this.store.metrics.listTask(id, offset, limit) };
  }

  tasksByState(): Record<number, number> {
    return this.store.tasks.countByState();
  }
}

/** A sample's time in one form, so samples sort by it; its receive time when the proplet sent none. */
function sampleTime(ts: string | undefined): string {
  return ts ? new Date(ts).toISOString() : nowIso();
}
