import { z } from "zod";
import { metadataText } from "./metadata.ts";
import { STATE_NAMES } from "./states.ts";
import type { Task } from "./task.ts";

// `GET /tasks`'s finding: which tasks (state, text, proplet, kind, job, workflow) and in what order. Pure: the
// schema turns query text into a `TaskFind`, and `taskMatches`/`compareTasks` say what every backend must return
// (the memory and key-value backends use them as they are; SQLite says the same in SQL).

/** A federated-learning round's task is named so by the FL room (manager/fl.ts). */
export const FL_ROUND_PREFIX = "fl-round-";
export const MAX_Q = 200;
const MAX_ID = 200;

export const TASK_SORTS = ["created_at", "updated_at", "name", "state", "priority"] as const;
export type TaskSort = (typeof TASK_SORTS)[number];

export interface TaskFind {
  /** Any of these states. */
  states?: number[];
  /** A substring of the name (any case) or of the id. */
  q?: string;
  /** The name exactly (a task given by its name, manager/tasks.ts resolveId). */
  name?: string;
  /** Proplet ids (a name already resolved to its id; the id as given too, for a proplet that is gone). */
  proplets?: string[];
  kind?: "standard" | "federated";
  job_id?: string;
  workflow_id?: string;
  /** FL round tasks are left out unless asked for (`include_rounds=true`, or `kind=federated`). */
  rounds: boolean;
  sort: TaskSort;
  order: "asc" | "desc";
  metadata?: Record<string, string>;
}

export const isRoundTask = (t: Pick<Task, "name">): boolean => t.name.startsWith(FL_ROUND_PREFIX);

/** A round task counts as federated, whatever its `kind` (the FL room creates them as standard modules). */
export const taskKind = (t: Pick<Task, "name" | "kind">): "standard" | "federated" =>
  t.kind === "federated" || isRoundTask(t) ? "federated" : "standard";

/** A state by name (any case) or number. */
function stateOf(text: string): number | undefined {
  const t = text.trim();
  if (/^\d$/.test(t) && Number(t) < STATE_NAMES.length) return Number(t);
  const i = STATE_NAMES.findIndex((n) => n.toLowerCase() === t.toLowerCase());
  return i < 0 ? undefined : i;
}

/** A parameter given at most once (hono gives each as the list of its values), empty as absent, then `check`ed. */
const single = <T extends string>(check: (s: string) => string | undefined) =>
  z
    .array(z.string())
    .max(1, "give it once, not several times")
    .optional()
    .transform((v, ctx) => {
      const s = v?.[0];
      if (s === undefined || s === "") return undefined;
      const bad = check(s);
      if (bad) {
        ctx.addIssue({ code: "custom", message: bad });
        return z.NEVER;
      }
      return s as T;
    });

const id = () => single((s) => (s.length > MAX_ID ? `at most ${MAX_ID} characters` : undefined));

const one = <T extends string>(values: readonly T[]) =>
  single<T>((s) => ((values as readonly string[]).includes(s) ? undefined : `must be one of ${values.join(", ")}`));

/**
 * The query as hono gives it (every parameter as the list of its values). `state` may be repeated or a comma list
 * (`state=Failed,Interrupted`, `state=4&state=6`); `q` is bounded; every other parameter is given once.
 */
export const TaskListQuery = z
  .object({
    state: z
      .array(z.string())
      .max(20, "at most 20 values")
      .optional()
      .transform((v, ctx) => {
        const parts = (v ?? []).flatMap((s) => s.split(",")).filter((s) => s.trim() !== "");
        if (!parts.length) return undefined;
        const states = new Set<number>();
        for (const p of parts) {
          const s = stateOf(p);
          if (s === undefined) {
            ctx.addIssue({
              code: "custom",
              message: `${JSON.stringify(p.slice(0, 40))} is not a state (${STATE_NAMES.join(", ")} or 0-${STATE_NAMES.length - 1})`,
            });
            return z.NEVER;
          }
          states.add(s);
        }
        return [...states].sort();
      }),
    q: z
      .array(z.string())
      .max(1, "give it once, not several times")
      .optional()
      .transform((v, ctx) => {
        const s = v?.[0]?.trim();
        if (!s) return undefined;
        if (s.length > MAX_Q) {
          ctx.addIssue({ code: "custom", message: `at most ${MAX_Q} characters` });
          return z.NEVER;
        }
        return s;
      }),
    proplet_id: id(),
    job_id: id(),
    workflow_id: id(),
    kind: one(["standard", "federated"] as const),
    include_rounds: one(["true", "false"] as const),
    sort: one(TASK_SORTS),
    order: one(["asc", "desc"] as const),
  })
  .transform((q) => ({
    states: q.state,
    q: q.q,
    proplet: q.proplet_id,
    kind: q.kind,
    job_id: q.job_id,
    workflow_id: q.workflow_id,
    rounds: q.include_rounds === "true" || q.kind === "federated",
    sort: q.sort ?? "created_at",
    // Newest first by default, as the listing always was; a name sorts A to Z.
    order: q.order ?? (q.sort === "name" ? "asc" : "desc"),
  }));
export type TaskListQuery = z.output<typeof TaskListQuery>;

/** The default listing: newest first, rounds hidden. */
export const DEFAULT_FIND: TaskFind = { rounds: false, sort: "created_at", order: "desc" };

/** Whether `find` asks anything beyond the plain newest-first listing of every task. */
export function plainListing(f: TaskFind): boolean {
  return (
    f.rounds &&
    !f.states &&
    !f.q &&
    !f.proplets &&
    !f.kind &&
    !f.job_id &&
    !f.workflow_id &&
    f.sort === "created_at" &&
    f.order === "desc"
  );
}

export function taskMatches(t: Omit<Task, "file">, f: TaskFind): boolean {
  if (!f.rounds && isRoundTask(t)) return false;
  if (f.states && !f.states.includes(t.state)) return false;
  if (f.kind && taskKind(t) !== f.kind) return false;
  if (f.job_id !== undefined && t.job_id !== f.job_id) return false;
  if (f.workflow_id !== undefined && t.workflow_id !== f.workflow_id) return false;
  if (f.proplets && !(t.proplet_id && f.proplets.includes(t.proplet_id))) return false;
  if (f.name !== undefined && t.name !== f.name) return false;
  if (f.q && !t.name.toLowerCase().includes(f.q.toLowerCase()) && !t.id.includes(f.q)) return false;
  for (const [k, v] of Object.entries(f.metadata ?? {})) if (metadataText(t.metadata?.[k]) !== v) return false;
  return true;
}

/** The sort key's value; ties go by (created_at, id), in the same direction. */
function key(t: Omit<Task, "file">, sort: TaskSort): string | number {
  switch (sort) {
    case "created_at":
      return t.created_at;
    case "updated_at":
      return t.updated_at;
    case "name":
      return t.name;
    case "state":
      return t.state;
    case "priority":
      return t.priority;
  }
}

export function compareTasks(sort: TaskSort, order: "asc" | "desc") {
  const dir = order === "asc" ? 1 : -1;
  return (a: Omit<Task, "file">, b: Omit<Task, "file">): number => {
    const ka = key(a, sort);
    const kb = key(b, sort);
    if (ka !== kb) return (ka < kb ? -1 : 1) * dir;
    if (a.created_at !== b.created_at) return (a.created_at < b.created_at ? -1 : 1) * dir;
    return a.id === b.id ? 0 : (a.id < b.id ? -1 : 1) * dir;
  };
}
