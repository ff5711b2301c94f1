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

/**
 * A task's times kept as milliseconds after its creation (`"start_time":18`, not the 26 characters of an ISO
 * string): with them a finished task's row is ~330 bytes instead of ~380, three to a 1 KiB page instead of two
 * (50,000 tasks: scripts/bench/burst.ts `data_dir_mib`), and a started row grows less, splitting fewer pages.
 * Only a time in toISOString's own form is kept so (it reads back the same text); any other stays a string, as
 * every time did before. sqlite/find.ts's `TIME_SQL` reads them the same way in SQL.
 */
export const TIME_KEYS = ["start_time", "finish_time", "updated_at", "next_run"] as const;

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * The milliseconds of a time in toISOString's form (`2026-12-07T01:08:26.157Z`, years 1000–9999), which toISOString
 * gives back as the same text; undefined for any other text. Read digit by digit: Date.parse and a toISOString to
 * check it doubled the cost of packing a task, written three times per task.
 */
function isoMs(v: unknown): number | undefined {
  if (typeof v !== "string" || v.length !== 24) return undefined;
  // - - T : : . Z at 4, 7, 10, 13, 16, 19, 23
  if (v.charCodeAt(4) !== 45 || v.charCodeAt(7) !== 45 || v.charCodeAt(10) !== 84 || v.charCodeAt(13) !== 58)
    return undefined;
  if (v.charCodeAt(16) !== 58 || v.charCodeAt(19) !== 46 || v.charCodeAt(23) !== 90) return undefined;
  const y = digits(v, 0, 4);
  const mo = digits(v, 5, 7);
  const d = digits(v, 8, 10);
  const h = digits(v, 11, 13);
  const mi = digits(v, 14, 16);
  const s = digits(v, 17, 19);
  const ms = digits(v, 20, 23);
  if (y < 1000 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 || ms < 0)
    return undefined;
  const leap = mo === 2 && y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 1 : 0;
  if (d > MONTH_DAYS[mo - 1]! + leap) return undefined;
  return Date.UTC(y, mo - 1, d, h, mi, s, ms);
}

/** The number written in v[from, to), or -1 if a character there is not a digit. */
function digits(v: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** A time as milliseconds after `base` (the creation), when both are in toISOString's form; else as it is. */
function sinceCreation(v: unknown, base: number | undefined): unknown {
  const ms = base === undefined ? undefined : isoMs(v);
  return ms === undefined ? v : ms - base!;
}

/**
 * A task (without its module) as its row's document. Also left out: `updated_at` when it is the finish time, as it
 * is once a task has ended (the run's end is the task's last change).
 */
export function packTask(task: Omit<Task, "file">): string {
  const defaults: Doc = TASK_DEFAULTS;
  const finished = task.updated_at === task.finish_time;
  const base = isoMs(task.created_at);
  const out: Doc = {};
  for (const k in task) {
    const v = task[k as keyof typeof task];
    switch (k) {
      case "id":
      case "state":
      case "created_at":
      case "file": // its own column (a copy of the task may carry it as undefined: tasks.ts withoutFile)
        continue;
      case "updated_at":
        if (!finished) out[k] = sinceCreation(v, base);
        continue;
      case "start_time":
      case "finish_time":
      case "next_run":
        if (v !== defaults[k]) out[k] = sinceCreation(v, base);
        continue;
    }
    if (v !== defaults[k] || !(k in defaults)) out[k] = v;
  }
  return JSON.stringify(out);
}

/** A row's document with its columns and left-out defaults put back (not yet checked against the schema). */
export function unpackTask(doc: string, cols: TaskColumns): unknown {
  const t = { ...TASK_DEFAULTS, ...JSON.parse(doc), id: cols.id, state: cols.state, created_at: cols.created_at };
  let base: number | undefined;
  for (const k of TIME_KEYS) {
    if (typeof t[k] !== "number") continue;
    base ??= Date.parse(cols.created_at);
    t[k] = new Date(base + t[k]).toISOString();
  }
  t.updated_at ??= t.finish_time;
  return t;
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

// A task's last ended run is kept in the task's own row (`last_run`) rather than in the runs table, as the fields
// in which it differs from its task: nearly always none, since the task's run fields are that run's until the next
// start. A task run once then costs no runs row and no index entry (50,000 tasks: 16 MiB). The store keeps the
// invariant that the row's last_run, put together with the row's task, is the run as recorded; a write that would
// change it moves the run to the runs table first (last-run.ts).

/** A run's fields that its task holds the same while the run is the task's last one. */
const RUN_AS_TASK = {
  run_id: "run_id",
  started_at: "start_time",
  proplet_id: "proplet_id",
  attempt: "attempt",
  state: "state",
  finished_at: "finish_time",
  results: "results",
  error: "error",
} as const satisfies Partial<Record<keyof Run, keyof Task>>;
type Mapped = keyof typeof RUN_AS_TASK;
/** In a packed last run: the run's fields that the run lacks while its task has them. */
const ABSENT = "-";

function taskSide(task: Omit<Task, "file">, k: Mapped): unknown {
  const v = task[RUN_AS_TASK[k]];
  return k === "attempt" ? (v ?? 1) : v;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return typeof a === "object" && typeof b === "object" && a !== null && JSON.stringify(a) === JSON.stringify(b);
}

/** Whether the task fields a last run takes from its task differ between two versions of the task. */
export function runFieldsDiffer(before: Omit<Task, "file">, after: Omit<Task, "file">): boolean {
  return (Object.keys(RUN_AS_TASK) as Mapped[]).some((k) => !same(taskSide(before, k), taskSide(after, k)));
}

/** The run as the task's row keeps it: what differs from the task (task_id, and a status its state names, implied). */
export function packLastRun(run: Run, task: Omit<Task, "file">): string {
  const out: Doc = {};
  const absent: string[] = [];
  for (const k of Object.keys(RUN_AS_TASK) as Mapped[]) {
    const mine = run[k];
    const theirs = taskSide(task, k);
    if (mine === undefined) {
      if (theirs !== undefined) absent.push(k);
    } else if (!same(mine, theirs)) out[k] = mine;
  }
  for (const k in run) {
    if (k in RUN_AS_TASK || k === "task_id") continue;
    if (k === "status" && run.status === stateName(run.state)) continue;
    out[k] = run[k as keyof Run];
  }
  if (absent.length) out[ABSENT] = absent;
  return JSON.stringify(out);
}

/** A packed last run put together with its task (not yet checked against the schema). */
export function unpackLastRun(doc: string, task: Omit<Task, "file">): Record<string, unknown> {
  const o = JSON.parse(doc) as Doc;
  const run: Doc = { task_id: task.id };
  for (const k of Object.keys(RUN_AS_TASK) as Mapped[]) {
    const v = taskSide(task, k);
    if (v !== undefined) run[k] = v;
  }
  for (const k in o) if (k !== ABSENT) run[k] = o[k];
  for (const k of (o[ABSENT] as string[] | undefined) ?? []) delete run[k];
  run.status ??= typeof run.state === "number" ? stateName(run.state) : undefined;
  return run;
}
