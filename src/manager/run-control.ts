import { AppError } from "../core/errors.ts";
import type { InvokeMsg, StartMsg, StopMsg } from "../core/messages.ts";
import type { Task } from "../core/task.ts";

// What the dispatcher's rooms share: the bus port, how a run ends, and the calls the helper rooms (run-end.ts,
// extra-runs.ts, results.ts, lost-runs.ts) make back into the dispatcher's queue. Helpers import this file, never
// dispatcher.ts: calls go one way.

/** The port to the proplets: what the dispatcher publishes. MQTT in `serve`, a recorder in unit tests. */
export interface ManagerBus {
  start(msg: StartMsg): Promise<void>;
  stop(msg: StopMsg): Promise<void>;
  invoke(msg: InvokeMsg): Promise<void>;
}

export interface RunEnd {
  results: unknown;
  error?: string | null;
  /** The proplet's own result ended it (else the manager settled it: lost, timed out, …). */
  fromProplet?: boolean;
  /** No retry, whatever the retries left (a stop, a shutdown). */
  final?: boolean;
  state?: number;
}

/** The dispatcher's own steps a helper room calls back. */
export interface RunControl {
  /** Ends the task's current run (run-end.ts). */
  endRun(task: Task, r: RunEnd): void;
  /** Queues the task and tries to place it at once. */
  enqueue(task: Task): number;
  /** Places queued tasks on proplets with free slots. */
  drain(): void;
  /** A stop that may go unheard (the proplet gone, the broker down): nothing waits on it failing. */
  sendStop(id: string, propletId: string | undefined): Promise<void>;
  /** Sends the current run's start again, same run id: a proplet with a run record answers it (lost-runs.ts). */
  askAgain(task: Task): Promise<void>;
}

/** The run fencing state the dispatcher, the result intake and the settling of lost runs share. */
export interface RunFence {
  /**
   * Tasks whose stop was sent, with what their end is to say (a user's stop, a closed FL round), else false: their
   * "task stopped" result ends the retry series.
   */
  stopping: Map<string, string | false>;
  /** Runs found Running at a takeover, until their proplet lists them or answers (see `Dispatcher.recover`). */
  unconfirmed: Set<string>;
  /** Runs whose start was sent again to a proplet with a run record, by run id, with when (lost-runs.ts). */
  asked: Map<string, number>;
}

/** A heartbeat that omits a task started this long ago means the proplet no longer runs it. */
export const HEARTBEAT_GRACE_MS = 3000;

/** How long a proplet with a run record has to answer a start sent again before its run is settled as lost. */
export const ASK_GRACE_MS = 10_000;

/** Why a run ended when its start message could not be published. */
export function publishFailed(e: unknown): string {
  // A start the site's trust policy refused (cli/site.ts): its reason is the task's error, as it is.
  if (e instanceof AppError && e.kind === "forbidden") return e.message;
  return `failed to publish start message: ${e instanceof Error ? e.message : e}`;
}
