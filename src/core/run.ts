import { z } from "zod";
import { clipError } from "./clip.ts";
import { stateName, TaskState } from "./states.ts";
import type { Task } from "./task.ts";

/** One start of a task. Cron firings, retries and restarts each make a new run; none overwrites another. */
export const Run = z.object({
  run_id: z.string(),
  task_id: z.string(),
  attempt: z.number().int(),
  state: z.number().int(),
  status: z.string(),
  proplet_id: z.string().optional(),
  started_at: z.string(),
  finished_at: z.string().optional(),
  results: z.unknown().optional(),
  error: z.string().optional(),
  /** The manager ended it without a result from its proplet (lost, timed out, stopped while unreachable). */
  settled: z.boolean().optional(),
  /** When its proplet's own result came after all; `results`, `error` and `state` are then the proplet's. */
  late_at: z.string().optional(),
  /** Why the manager had settled it, kept when a late result replaces its outcome. */
  settled_error: z.string().optional(),
});
export type Run = z.infer<typeof Run>;

/** The run a Running task is in, from the task's own fields (the current run is stored only when it ends). */
export function currentRun(t: Task): Run {
  return {
    run_id: t.run_id!,
    task_id: t.id,
    attempt: t.attempt ?? 1,
    state: TaskState.Running,
    status: "Running",
    proplet_id: t.proplet_id,
    started_at: t.start_time,
  };
}

/** A proplet's error, if it is one: upstream sends "" or null for none. Clipped to MAX_ERROR_CHARS. */
export function errorOf(error: string | null | undefined): string | undefined {
  return typeof error === "string" && error !== "" ? clipError(error) : undefined;
}

/** The run with its proplet's outcome: Completed, or Failed with the error (an empty one is no error). */
export function withOutcome(run: Run, results: unknown, error: string | null | undefined): Run {
  const { error: _before, ...rest } = run;
  const failure = errorOf(error);
  const state = failure ? TaskState.Failed : TaskState.Completed;
  return { ...rest, state, status: stateName(state), results, ...(failure ? { error: failure } : {}) };
}
