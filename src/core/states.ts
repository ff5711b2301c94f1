// Task states are numeric on the wire and in the API, as upstream; the API adds `status` with the name.
export const TaskState = {
  Pending: 0,
  Scheduled: 1,
  Running: 2,
  Completed: 3,
  Failed: 4,
  Skipped: 5,
  Interrupted: 6,
} as const;
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

export const STATE_NAMES = [
  "Pending",
  "Scheduled",
  "Running",
  "Completed",
  "Failed",
  "Skipped",
  "Interrupted",
] as const;

export function stateName(s: number): string {
  return STATE_NAMES[s] ?? "Unknown";
}

export function isTerminal(s: number): boolean {
  return s === TaskState.Completed || s === TaskState.Failed || s === TaskState.Skipped || s === TaskState.Interrupted;
}

/**
 * A stop a user asked for ends the task Interrupted (6) with this reason, not Failed: upstream clients know the
 * state, and a person can tell a stop from a failure. A shutdown's Interrupted says so instead.
 */
export const STOPPED_BY_USER = "stopped by user";
export const INTERRUPTED_BY_SHUTDOWN = "interrupted by shutdown";
