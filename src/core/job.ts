import { z } from "zod";
import { typoKey } from "./nearest.ts";
import { CLIENT_FIELD_NAMES, GroupTask } from "./task.ts";
import { BIDI_MESSAGE, MEMBER_SCHEDULE, NO_BIDI } from "./task-rules.ts";

// Jobs and workflows: groups of tasks created together.

export const ExecutionMode = z.enum(["parallel", "sequential", "configurable"]);

/** The most characters a job's or workflow's name may have: the console shows it as a heading and in lists. */
export const GROUP_NAME_MAX = 200;

/** A job's or workflow's given name: one line of at most GROUP_NAME_MAX characters. */
const GroupName = z
  .string()
  .trim()
  .min(1, "is required")
  .max(GROUP_NAME_MAX, `must be at most ${GROUP_NAME_MAX} characters`)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  .regex(/^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/, "must be one line without control characters")
  .regex(NO_BIDI, BIDI_MESSAGE);

/**
 * A task of a job or workflow runs when its group does: a schedule on one fired it alone (a workflow never started
 * ran that task, once), and one on the group was ignored. Both are refused, saying so.
 */
const MemberTask = GroupTask.superRefine((t, ctx) => {
  if (t.schedule) ctx.addIssue({ code: "custom", path: ["schedule"], message: MEMBER_SCHEDULE });
});

export const JobCreate = z.object({
  name: GroupName,
  execution_mode: ExecutionMode.default("parallel"),
  tasks: z.array(MemberTask).min(1, "a job needs at least one task"),
});
export type JobCreate = z.infer<typeof JobCreate>;

export const WorkflowCreate = z.object({
  /** Kept on each of its tasks as `workflow_name` (a workflow is not stored apart from its tasks). */
  name: GroupName.optional(),
  tasks: z.array(MemberTask).min(1, "a workflow needs at least one task"),
});
export type WorkflowCreate = z.infer<typeof WorkflowCreate>;

export const JOB_FIELDS = Object.keys(JobCreate.shape);
export const WORKFLOW_FIELDS = Object.keys(WorkflowCreate.shape);
export const GROUP_TASK_FIELDS = [...CLIENT_FIELD_NAMES, "id"];

/** A task's cron settings, which a job or workflow as a whole does not have. */
const GROUP_CRON_KEYS = ["schedule", "cron", "timezone", "is_recurring", "overlap_policy", "misfire_policy"];

/** A job's or workflow's key, or one of its tasks', that nearly names a field (`depend_on`): its error. */
export const groupTypo =
  (fields: readonly string[]) =>
  (data: unknown): string | undefined => {
    const top = typoKey(data, fields);
    if (top) return top;
    // Not a typo, and not for another client: a group's schedule and cron settings were ignored, in silence.
    if (data && typeof data === "object") {
      const cron = GROUP_CRON_KEYS.find((k) => k in data);
      if (cron)
        return `${cron}: a job or workflow has no schedule: start it (jobs start, workflows start), or schedule single tasks`;
    }
    const tasks = (data as { tasks?: unknown } | null)?.tasks;
    if (!Array.isArray(tasks)) return undefined;
    for (let i = 0; i < tasks.length; i++) {
      const t = typoKey(tasks[i], GROUP_TASK_FIELDS, `tasks.${i}.`);
      if (t) return t;
    }
    return undefined;
  };

/**
 * The stored job; its tasks carry its id. A workflow is not stored apart: it is its tasks' `workflow_id` (and its
 * name their `workflow_name`).
 */
export const Job = z.object({
  id: z.string(),
  name: z.string(),
  execution_mode: ExecutionMode,
  created_at: z.string(),
});
export type Job = z.infer<typeof Job>;

export const JobStatus = z.enum(["pending", "running", "completed", "failed", "interrupted"]).optional();

/**
 * `?fresh=true` on `POST /jobs` and `POST /workflows`: a fresh copy of a reusable file. Its task ids become
 * `<group id>.<id>` (the file's id kept as `local_id`, `depends_on` rewritten alike) and a workflow gets a new id;
 * without it the client's ids are kept, as upstream, and one already taken is refused.
 */
export const Fresh = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1");
