import { z } from "zod";
import { checkSchedule, validTimezone } from "./cron.ts";
import { REORDERING } from "./reorder.ts";
import { envError } from "./wasm-call.ts";

// What a client may give a task, beyond the field types of core/task.ts: names and ids that stay what they say
// where they are shown and used (REST and console addresses, lists), env names a guest can hold, and cron
// settings that go together.

/**
 * A client's env: each name one a guest can be given (checked here, not only on the proplet, where a task with
 * `bad name` failed after it was accepted and started). Stored tasks and messages keep the plain `Env`.
 */
export const envRule = (env: Record<string, string>, ctx: z.RefinementCtx) => {
  const e = envError(env);
  if (e) ctx.addIssue({ code: "custom", message: e });
};

/**
 * An id a client gives a task, a workflow or a job: it becomes a segment of the REST and console addresses, so
 * letters, digits and `_.:-` only, starting with a letter or digit (`..%2Fproplets%2FX` made the console's Delete
 * of that "task" delete a proplet; `..` is a path step).
 */
export const ClientId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/, "1 to 200 letters, digits or _.:-, starting with a letter or digit");

/** A task's name is the export it calls: bounded, as every name a client gives is (a 1 MB name rode every event). */
export const MAX_TASK_NAME = 512;

/**
 * No bidirectional controls in a name (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C), nor the line and paragraph
 * separators (core/reorder.ts): `‮gnp.exe‬` showed as "exe.png" in every list. No export and no honest name needs them.
 */
export const NO_BIDI = new RegExp(`^[^${REORDERING}]*$`);
export const BIDI_MESSAGE = "must not hold bidirectional control characters (they make it read as another name)";

// A schedule must parse in its time zone; both are checked together so the error names the right field.
export const scheduleCheck = (t: { schedule?: string; timezone?: string }, ctx: z.RefinementCtx) => {
  if (t.timezone !== undefined && t.timezone !== "" && !validTimezone(t.timezone)) {
    ctx.addIssue({ code: "custom", path: ["timezone"], message: `unknown time zone ${JSON.stringify(t.timezone)}` });
    return;
  }
  if (t.schedule) {
    const err = checkSchedule(t.schedule, t.timezone || "UTC");
    if (err) ctx.addIssue({ code: "custom", path: ["schedule"], message: `invalid cron expression: ${err}` });
  }
};

/**
 * A new task's cron settings without a schedule did nothing, in silence (`--timezone`, `--overlap` with no
 * `--schedule`). Empty and false values pass: upstream's clients send their defaults.
 */
export const withoutSchedule = (t: CronSettings, ctx: z.RefinementCtx) => {
  for (const k of cronWithoutSchedule(t))
    ctx.addIssue({ code: "custom", path: [k], message: "goes with a schedule, and none is given" });
};

type CronSettings = {
  schedule?: string;
  timezone?: string;
  is_recurring?: boolean;
  overlap_policy?: string;
  misfire_policy?: string;
};

/** The cron settings given (not empty, not false) where there is no schedule. */
export function cronWithoutSchedule(t: CronSettings): string[] {
  if (t.schedule) return [];
  return [
    ...(["timezone", "overlap_policy", "misfire_policy"] as const).filter((k) => t[k]),
    ...(t.is_recurring ? ["is_recurring"] : []),
  ];
}

/** A task of a job or workflow runs when its group is started: no schedule of its own. */
export const MEMBER_SCHEDULE =
  "a task of a job or workflow runs when its group is started; schedules are for single tasks";

interface Membership {
  job_id?: string;
  workflow_id?: string;
  depends_on?: string[];
  schedule?: string;
}

/**
 * Why a change of a task (`PUT /tasks/{id}`) is refused, naming the field: a job's or workflow's task takes no
 * schedule there either, cron settings go with a schedule, and a task's group and parents are set when its group
 * is created (moving a task out of its job let it be deleted while the job ran; out of its workflow, a parent was
 * deleted from under its children). The same value again passes: clients send whole tasks back.
 */
export function updateRefusal(
  task: Membership,
  patch: Membership & Record<string, unknown>,
  next: Membership & CronSettings,
): string | undefined {
  for (const k of ["job_id", "workflow_id"] as const)
    if (patch[k] !== undefined && patch[k] !== task[k]) return `${k}: a task's group is set when its group is created`;
  if (patch.depends_on !== undefined && (patch.depends_on ?? []).join("\0") !== (task.depends_on ?? []).join("\0"))
    return "depends_on: a task's parents are set when its workflow is created";
  if (patch.schedule && (next.job_id || next.workflow_id)) return `schedule: ${MEMBER_SCHEDULE}`;
  // Cron settings the change gives, on a task that has no schedule once changed.
  const given = cronWithoutSchedule(patch)[0];
  if (given && !next.schedule) return `${given}: goes with a schedule, and none is given`;
  return undefined;
}
