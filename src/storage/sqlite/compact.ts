import type { Run } from "../../core/run.ts";
import { stateName } from "../../core/states.ts";
import type { Task } from "../../core/task.ts";
import { ZERO_TIME } from "../../core/time.ts";

// What a stored document leaves out, so 50,000 tasks take half the room (scripts/bench/dispatch.ts,
// `data_dir_idle_mib`): the fields its row keeps in columns of their own, and the fields at the value nearly every
// task has. Reading puts them back before the schema checks the document, so a document written in full (before
// this) reads the same. Pure: text in, text out.

/** A task's fields at these values are left out of its document. */
const TASK_DEFAULTS = {
  kind: "standard",
  cli_args: null,
  daemon: false,
  encrypted: false,
  priority: 50,
  start_time: ZERO_TIME,
  finish_time: ZERO_TIME,
  next_run: ZERO_TIME,
} as const satisfies Partial<Task>;

/** The task row's own columns. */
export interface TaskColumns {
  id: string;
  state: number;
  created_at: string;
}

type Doc = Record<string, unknown>;

function without(doc: Doc, skip: (key: string, value: unknown) => boolean): string {
  const out: Doc = {};
  for (const k in doc) if (!skip(k, doc[k])) out[k] = doc[k];
  return JSON.stringify(out);
}

/** A task (without its module) as its row's document. */
export function packTask(task: Omit<Task, "file">): string {
  const defaults: Doc = TASK_DEFAULTS;
  return without(
    task,
    (k, v) => k === "id" || k === "state" || k === "created_at" || (k in defaults && defaults[k] === v),
  );
}

/** A row's document with its columns and left-out defaults put back (not yet checked against the schema). */
export function unpackTask(doc: string, cols: TaskColumns): unknown {
  return { ...TASK_DEFAULTS, ...JSON.parse(doc), id: cols.id, state: cols.state, created_at: cols.created_at };
}

/** The run row's own columns. */
export interface RunColumns {
  task_id: string;
  run_id: string;
  started_at: string;
}

/** A run as its row's document: without its columns, and without a status that its state already names. */
export function packRun(run: Run): string {
  return without(
    run,
    (k, v) => k === "task_id" || k === "run_id" || k === "started_at" || (k === "status" && v === stateName(run.state)),
  );
}

export function unpackRun(doc: string, cols: RunColumns): unknown {
  const o = JSON.parse(doc) as Doc;
  return {
    ...o,
    status: o.status ?? (typeof o.state === "number" ? stateName(o.state) : undefined),
    task_id: cols.task_id,
    run_id: cols.run_id,
    started_at: cols.started_at,
  };
}
