import { isTerminal, TaskState } from "./states.ts";

// Dependency graphs of jobs and workflows: validation and the decisions of the coordinator, as pure functions.

export interface Node {
  id: string;
  depends_on?: string[];
}

/** Returns an error naming the tasks involved, or undefined when the graph is a DAG over known tasks. */
export function validateDag(nodes: readonly Node[]): string | undefined {
  const ids = new Set(nodes.map((n) => n.id));
  for (const n of nodes) {
    for (const d of n.depends_on ?? []) {
      if (d === n.id) return `task ${n.id} depends on itself`;
      if (!ids.has(d)) return `task ${n.id} depends on ${d}, which is not in the set`;
    }
  }
  // Iterative DFS with colours; on a back edge, report the cycle's path.
  const deps = new Map(nodes.map((n) => [n.id, n.depends_on ?? []]));
  const colour = new Map<string, 1 | 2>();
  for (const start of ids) {
    if (colour.has(start)) continue;
    const stack: { id: string; next: number }[] = [{ id: start, next: 0 }];
    colour.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const ds = deps.get(top.id)!;
      if (top.next >= ds.length) {
        colour.set(top.id, 2);
        stack.pop();
        continue;
      }
      const d = ds[top.next++]!;
      const c = colour.get(d);
      if (c === 1) {
        const path = stack.slice(stack.findIndex((s) => s.id === d)).map((s) => s.id);
        return `circular dependency: ${[...path, d].join(" -> ")}`;
      }
      if (c === undefined) {
        colour.set(d, 1);
        stack.push({ id: d, next: 0 });
      }
    }
  }
  return undefined;
}

export type RunIf = "success" | "failure";

/**
 * Whether a task whose parents are all terminal should run, as upstream: `success` needs every parent
 * Completed; `failure` needs at least one parent Failed.
 */
export function shouldRun(runIf: string | undefined, parentStates: readonly number[]): boolean {
  if (parentStates.length === 0) return true;
  if (runIf === "failure") return parentStates.some((s) => s === TaskState.Failed);
  return parentStates.every((s) => s === TaskState.Completed);
}

export interface Decision {
  start: string[];
  skip: string[];
  /** Why each skipped task does not run, as its error says. */
  why: Record<string, string>;
}

/** Why a task whose parents are all final does not run. */
function skipReason(runIf: string | undefined, parents: readonly number[]): string {
  if (parents.includes(TaskState.Interrupted)) return "a task it depends on was stopped";
  if (runIf === "failure") return "no task it depends on failed (run_if: failure)";
  if (parents.includes(TaskState.Failed)) return "a task it depends on failed (run_if: success)";
  return "a task it depends on did not run";
}

export interface GraphTask extends Node {
  state: number;
  run_if?: string;
}

/**
 * Which Pending tasks to start and which to skip, given the states now. Skips cascade at once: a task whose
 * parent is skipped in this pass is decided in the same pass.
 */
export function decide(tasks: readonly GraphTask[]): Decision {
  const state = new Map(tasks.map((t) => [t.id, t.state]));
  const start: string[] = [];
  const skip: string[] = [];
  const why: Record<string, string> = {};
  for (let changed = true; changed; ) {
    changed = false;
    for (const t of tasks) {
      if (state.get(t.id) !== TaskState.Pending) continue;
      const deps = t.depends_on ?? [];
      if (deps.length === 0) continue; // roots are started explicitly
      const parents = deps.map((d) => state.get(d) ?? TaskState.Skipped);
      if (!parents.every(isTerminal)) continue;
      if (shouldRun(t.run_if, parents)) {
        start.push(t.id);
        state.set(t.id, TaskState.Scheduled);
      } else {
        skip.push(t.id);
        why[t.id] = skipReason(t.run_if, parents);
        state.set(t.id, TaskState.Skipped);
        changed = true;
      }
    }
  }
  return { start, skip, why };
}

/**
 * Job and workflow state from their tasks, as upstream's ComputeJobState but for two things. A group is Running
 * while any of its tasks runs or waits for a proplet (upstream: Failed from its first failure, while a workflow's
 * `run_if: failure` branch, or a task a user stopped alone, still ran unseen by `?status=running`). And stopped by
 * a user with nothing failed, it is Interrupted, as its stopped tasks are (upstream: Failed).
 */
export function groupState(states: readonly number[]): number {
  if (states.length === 0) return TaskState.Pending;
  if (states.some((s) => s === TaskState.Running || s === TaskState.Scheduled)) return TaskState.Running;
  if (states.some((s) => s === TaskState.Failed)) return TaskState.Failed;
  if (states.some((s) => s === TaskState.Interrupted)) return TaskState.Interrupted;
  if (states.every((s) => s === TaskState.Completed || s === TaskState.Skipped)) return TaskState.Completed;
  return TaskState.Pending;
}

/**
 * Why a task of a job or workflow may not be deleted, or undefined: a workflow's children would wait for it for
 * ever (they start when their parents have ended), and so would the rest of a running job. What depends on it goes
 * first; a job is stopped first.
 */
export function deleteRefusal(
  task: { id: string; job_id?: string; workflow_id?: string },
  group: readonly { id: string; state: number; depends_on?: string[] }[],
): string | undefined {
  if (task.workflow_id) {
    const children = group.filter((t) => t.depends_on?.includes(task.id)).map((t) => t.id);
    const one = children.length === 1;
    if (children.length)
      return `task ${task.id}: ${one ? "task" : "tasks"} ${children.join(", ")} of workflow ${task.workflow_id} ${one ? "depends" : "depend"} on it: delete ${one ? "it" : "them"} first`;
  }
  if (task.job_id && group.some((t) => t.state === TaskState.Running || t.state === TaskState.Scheduled))
    return `task ${task.id}: job ${task.job_id} is running: stop it first (jobs stop ${task.job_id})`;
  return undefined;
}

/**
 * Why a task's module may not change now: it waits its turn in a job or workflow that is running (the group was
 * started with one module, and its next step would have run another). Undefined when it may.
 */
export function moduleChangeRefusal(
  task: { id: string; state: number; job_id?: string; workflow_id?: string },
  group: readonly { state: number }[],
): string | undefined {
  if (task.state !== TaskState.Pending && task.state !== TaskState.Scheduled) return undefined;
  const name = task.workflow_id ? `workflow ${task.workflow_id}` : task.job_id ? `job ${task.job_id}` : undefined;
  if (!name || !group.some((t) => t.state === TaskState.Running || t.state === TaskState.Scheduled)) return undefined;
  const stop = task.workflow_id ? `workflows stop ${task.workflow_id}` : `jobs stop ${task.job_id}`;
  return `task ${task.id} waits its turn in ${name}, which is running: stop it first (${stop}), or change the module once it has ended`;
}
