import { z } from "zod";
import { typoKey } from "./nearest.ts";
import { CLIENT_FIELD_NAMES, type Task, TaskUpdate } from "./task.ts";

// `POST /tasks/{id}/clone`: a new task made from a stored one, with some fields changed ("clone" and "re-run with
// edits" in the console). Its module travels with it: a task's view shows the inline module redacted, so a client
// could not send it back.

/**
 * `POST /tasks/{id}/clone`'s body: the fields to change, and `unset`, the fields the copy leaves out (a number such
 * as `timeout_s` has no empty value to say so).
 */
export const TaskClone = z.intersection(
  TaskUpdate,
  z.object({
    unset: z
      .array(z.enum(CLIENT_FIELD_NAMES as [string, ...string[]]))
      .max(64)
      .optional(),
  }),
);
export type TaskClone = z.infer<typeof TaskClone>;

/** A clone body's key that nearly names a field (`max_retry`): its error (it was dropped in silence). */
export const cloneTypo = (data: unknown): string | undefined => typoKey(data, [...CLIENT_FIELD_NAMES, "unset"]);

/** Fields a copy never takes: it stands alone, outside the job or workflow its original belongs to. */
const GROUP_FIELDS = ["depends_on", "run_if", "workflow_id", "job_id"] as const;

/**
 * The create body of a copy of `task` with `patch` over it (to be checked with TaskCreate). Only fields a client
 * may set are copied; the proplet only where the client pinned it (otherwise it is where the task last ran); a new
 * module (`file` or `image_url`) replaces the old one and its signature; an empty value (`""`, `[]`, `{}`) removes
 * the field, as naming it in `unset` does.
 */
export function cloneBody(task: Task, { unset, ...patch }: TaskClone): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const k of CLIENT_FIELD_NAMES) if (task[k] !== undefined) body[k] = task[k];
  for (const k of GROUP_FIELDS) delete body[k];
  if (!task.pinned) delete body.proplet_id;
  // A new module replaces the old one and its signature. An emptied one only leaves its own field out (and the
  // signature with an inline file): `{"file": ""}` took the image and its signature too, leaving no module at all.
  const newModule = (v: unknown) => v !== undefined && !isEmpty(v);
  if (newModule(patch.file) || newModule(patch.image_url)) {
    delete body.file;
    delete body.image_url;
    delete body.signature;
  } else if (patch.file !== undefined) delete body.signature;
  for (const k of unset ?? []) delete body[k];
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    // An emptied field (a form cleared it) is left out, as in a task created without it; a name stays to be refused.
    if (k !== "name" && isEmpty(v)) delete body[k];
    else body[k] = v;
  }
  // A copy without a schedule leaves its cron settings behind: they go with one (a new task is refused them).
  if (!body.schedule) for (const k of CRON_SETTINGS) delete body[k];
  return body;
}

const CRON_SETTINGS = ["timezone", "overlap_policy", "misfire_policy", "is_recurring"] as const;

const isEmpty = (v: unknown): boolean =>
  v === "" || (Array.isArray(v) ? v.length === 0 : typeof v === "object" && v !== null && Object.keys(v).length === 0);
