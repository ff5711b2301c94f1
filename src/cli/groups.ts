import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { defineCommand } from "citty";
import { GROUP_TASK_FIELDS } from "../core/job.ts";
import { typoKey } from "../core/nearest.ts";
import type { TaskView } from "../core/task.ts";
import { action, int, readUserFile, UsageError } from "./args.ts";
import { ApiError, api, type Conn, okCommand, resolveId, urlArg } from "./client.ts";
import { printJson, printRecord, printTable } from "./output.ts";

// Jobs and workflows from a JSON or YAML file. A task in the file may name a local `.wasm` as `file_path`, or as
// `file` ending in .wasm (relative to the file); it is sent inline as base64 `file`.

interface GroupOut {
  state: number;
  status: string;
  tasks: TaskView[];
  job_id?: string;
  workflow_id?: string;
  name?: string;
  execution_mode?: string;
}

/** The tasks of a job or workflow from upstream's flags: `--tasks '<json array>'` or `--tasks-file FILE`. */
function tasksFromFlags(a: { tasks?: string; "tasks-file"?: string }): Record<string, unknown>[] | undefined {
  if (a.tasks && a["tasks-file"]) throw new UsageError("use either --tasks or --tasks-file, not both");
  const text = a["tasks-file"] ? readFileSync(a["tasks-file"], "utf8") : a.tasks;
  if (text === undefined) return undefined;
  let tasks: unknown;
  try {
    tasks = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--tasks: not a JSON array: ${e instanceof Error ? e.message : e}`);
  }
  if (!Array.isArray(tasks) || tasks.length === 0) throw new UsageError("at least one task is required");
  // A task's file_path is a local file here too: relative to --tasks-file's directory, else to this one.
  const base = a["tasks-file"] ? dirname(a["tasks-file"]) : ".";
  return readTaskFiles(tasks as Record<string, unknown>[], base, a["tasks-file"] ?? "--tasks");
}

/** A spec from the file argument or from upstream's flags, one or the other. */
function specFrom(a: { file?: string; tasks?: string; "tasks-file"?: string }): Record<string, unknown> {
  const tasks = tasksFromFlags(a);
  if (tasks && a.file) throw new UsageError("give a spec file or --tasks/--tasks-file, not both");
  if (tasks) return { tasks };
  if (!a.file) throw new UsageError("give a spec file (JSON or YAML), or --tasks / --tasks-file as upstream's CLI");
  return readSpec(a.file);
}

const freshArg = {
  fresh: {
    type: "boolean",
    description:
      "a fresh copy of a reusable file: task ids become GROUP.ID (else the file's ids are kept, as upstream)",
  },
} as const;

const upstreamTasks = {
  tasks: { type: "string", description: "the tasks as a JSON array (upstream's flag), instead of a spec file" },
  "tasks-file": { type: "string", description: "a file holding the JSON array of tasks (upstream's flag)" },
} as const;

export function readSpec(path: string): Record<string, unknown> {
  const text = readUserFile(path).toString("utf8");
  let spec: unknown;
  try {
    spec = /\.ya?ml$/i.test(path) ? Bun.YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `${path} is not valid ${/\.ya?ml$/i.test(path) ? "YAML" : "JSON"}: ${e instanceof Error ? e.message : e}`,
    );
  }
  if (!spec || typeof spec !== "object" || !Array.isArray((spec as { tasks?: unknown }).tasks))
    throw new UsageError(`${path} must hold an object with a "tasks" list`);
  const s = spec as { tasks: Record<string, unknown>[] };
  s.tasks = readTaskFiles(s.tasks, dirname(path), path);
  return s;
}

/**
 * Each task's local module (`file_path`, or `file` ending in .wasm), relative to `base`, read and put inline as
 * `file`. A key near file_path is refused here: the manager knows no file_path, so `filepath:` passed it as a
 * field of upstream's it ignores, and the group was made with no module (said only when it started).
 */
function readTaskFiles(tasks: Record<string, unknown>[], base: string, from: string): Record<string, unknown>[] {
  for (const [i, t] of tasks.entries()) {
    if (!t || typeof t !== "object") continue;
    const typo = typoKey(t, ["file_path", ...GROUP_TASK_FIELDS], `tasks[${i}].`);
    if (typo) throw new UsageError(`${from}: ${typo}`);
    // `file: add.wasm` is what a person writes: base64 holds no ".", so a name ending .wasm is a path.
    if (typeof t.file === "string" && /\.wasm$/i.test(t.file) && t.file_path === undefined) {
      t.file_path = t.file;
      delete t.file;
    }
    if (typeof t.file_path === "string") {
      const at = resolve(base, t.file_path);
      try {
        t.file = readFileSync(at).toString("base64");
      } catch (e) {
        throw new UsageError(`${from}: tasks[${i}].file_path ${at}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
      delete t.file_path;
    }
  }
  return tasks;
}

/**
 * `create --start`'s start. One refused (a task with no module) left a group made and waiting, which the error
 * did not say: it says so now, and how to go on.
 */
async function startCreated(conn: Conn, kind: "job" | "workflow", id: string): Promise<void> {
  try {
    await api(conn, "POST", `/${kind}s/${encodeURIComponent(id)}/start`);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    throw new ApiError(
      `${kind} ${id} was created but did not start: ${e.message} (mend its tasks with \`propeller tasks update\`, then \`propeller ${kind}s start ${id}\`)`,
    );
  }
}

function show(g: GroupOut, json: boolean): void {
  if (json) {
    printJson(g);
    return;
  }
  printRecord({
    ...(g.job_id
      ? { job_id: g.job_id, name: g.name, execution_mode: g.execution_mode }
      : { workflow_id: g.workflow_id, ...(g.name ? { name: g.name } : {}) }),
    status: `${g.status} (${g.state})`,
  });
  printTable(g.tasks as unknown as Record<string, unknown>[], [
    ["ID", "id"],
    ["NAME", "name"],
    ["STATUS", "status"],
    ["DEPENDS ON", "depends_on"],
    ["RESULTS", "results"],
    ["ERROR", "error"],
  ]);
  if (g.workflow_id) process.stdout.write(`\n${drawDag(g.tasks)}`);
}

/**
 * The DAG as text, one task a line, indented by its depth (the longest way from a root), with its state and the
 * tasks it waits for:
 *
 *   fetch [Completed]
 *     train [Running] ← fetch
 *       report [Pending] ← train
 */
export function drawDag(tasks: TaskView[]): string {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const depth = new Map<string, number>();
  const depthOf = (id: string, seen = new Set<string>()): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (seen.has(id)) return 0;
    seen.add(id);
    const parents = (byId.get(id)?.depends_on ?? []).filter((p) => byId.has(p));
    const d = parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  // A fresh copy's tasks are stored as `<workflow id>.<local id>`; the drawing names them as the file did.
  const name = (id: string) => byId.get(id)?.local_id ?? id;
  const ordered = [...tasks].sort((a, b) => depthOf(a.id) - depthOf(b.id));
  return ordered
    .map((t) => {
      const deps = t.depends_on?.length ? ` ← ${t.depends_on.map(name).join(", ")}` : "";
      return `${"  ".repeat(depthOf(t.id))}${name(t.id)} [${t.status}]${t.run_if ? ` (if ${t.run_if})` : ""}${deps}\n`;
    })
    .join("");
}

/** `jobs list` and `workflows list`: a page of groups, filtered by status, as a table or JSON. */
function groupList(key: "jobs" | "workflows", description: string, columns: [string, string][]) {
  return defineCommand({
    meta: { description },
    args: {
      status: { type: "string", description: "pending | running | completed | failed | interrupted" },
      offset: { type: "string", alias: ["o"] as string[], default: "0" },
      limit: { type: "string", alias: ["l"] as string[], default: "100" },
      ...urlArg,
    },
    run: ({ args }) =>
      action(async () => {
        const q = new URLSearchParams({
          offset: String(int("offset", args.offset, 0, 1e9)),
          limit: String(int("limit", args.limit, 1, 1000)),
          // As the table prints it (Interrupted) or as the API takes it (interrupted).
          ...(args.status ? { status: args.status.toLowerCase() } : {}),
        });
        const p = await api<{ total: number } & Record<string, GroupOut[]>>(args, "GET", `/${key}?${q}`);
        if (args.json) return printJson(p);
        const items = p[key] ?? [];
        printTable(
          items.map((g) => ({ ...g, count: g.tasks.length })) as unknown as Record<string, unknown>[],
          columns,
        );
        process.stdout.write(`${items.length} of ${p.total} ${key.slice(0, -1)}(s)\n`);
      }),
  });
}

const idArg = (what: string) =>
  ({ id: { type: "positional", description: `${what} id (or a unique prefix of it)`, required: true } }) as const;

export const jobsCommand = defineCommand({
  meta: { name: "jobs", description: "Groups of tasks run in parallel, in sequence, or by depends_on" },
  subCommands: {
    create: defineCommand({
      meta: { description: "Create a job from a JSON or YAML file: {name, execution_mode, tasks: [...]}" },
      args: {
        file: { type: "positional", description: "job spec (.json, .yaml)", required: false },
        ...upstreamTasks,
        name: { type: "string", description: "job name (overrides the file)" },
        "execution-mode": { type: "string", description: "parallel | sequential | configurable (overrides the file)" },
        start: { type: "boolean", description: "start it right away" },
        ...freshArg,
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const spec = specFrom(args);
          if (args.name) spec.name = args.name;
          if (!spec.name) throw new UsageError("name is required: --name, or name in the spec file");
          if (args["execution-mode"]) spec.execution_mode = args["execution-mode"];
          const job = await api<GroupOut>(args, "POST", `/jobs${args.fresh ? "?fresh=true" : ""}`, spec);
          if (args.start) await startCreated(args, "job", job.job_id ?? "");
          show(
            args.start ? await api<GroupOut>(args, "GET", `/jobs/${encodeURIComponent(job.job_id ?? "")}`) : job,
            args.json,
          );
        }),
    }),
    list: groupList("jobs", "List jobs", [
      ["ID", "job_id"],
      ["NAME", "name"],
      ["MODE", "execution_mode"],
      ["STATUS", "status"],
      ["TASKS", "count"],
    ]),
    get: defineCommand({
      meta: { description: "Show a job and its tasks" },
      args: { ...idArg("job"), ...urlArg },
      run: ({ args }) =>
        action(async () =>
          show(
            await api<GroupOut>(args, "GET", `/jobs/${encodeURIComponent(await resolveId(args, "job", args.id))}`),
            args.json,
          ),
        ),
    }),
    start: okCommand(
      "Start a job (one that ran before runs again whole)",
      "job",
      "POST",
      (id) => `/jobs/${id}/start`,
      rerunNote("job"),
    ),
    stop: okCommand("Stop a job's running tasks and skip the rest", "job", "POST", (id) => `/jobs/${id}/stop`),
  },
});

export const workflowsCommand = defineCommand({
  meta: { name: "workflows", description: "DAGs of tasks with depends_on and run_if" },
  subCommands: {
    create: defineCommand({
      meta: {
        description:
          "Create a workflow from a JSON or YAML file: {name, tasks: [{id, name, file_path: ./add.wasm (or image_url), depends_on, run_if, ...}]}",
      },
      args: {
        file: { type: "positional", description: "workflow spec (.json, .yaml)", required: false },
        ...upstreamTasks,
        start: { type: "boolean", description: "start it right away" },
        ...freshArg,
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const path = `/workflows${args.fresh ? "?fresh=true" : ""}`;
          const wf = await api<GroupOut>(args, "POST", path, specFrom(args));
          if (args.start) await startCreated(args, "workflow", wf.workflow_id ?? "");
          show(
            args.start
              ? await api<GroupOut>(args, "GET", `/workflows/${encodeURIComponent(wf.workflow_id ?? "")}`)
              : wf,
            args.json,
          );
        }),
    }),
    list: groupList("workflows", "List workflows, newest first", [
      ["ID", "workflow_id"],
      ["NAME", "name"],
      ["STATUS", "status"],
      ["TASKS", "count"],
    ]),
    get: defineCommand({
      meta: { description: "Show a workflow, its tasks and its DAG with each task's state" },
      args: { ...idArg("workflow"), ...urlArg },
      run: ({ args }) =>
        action(async () =>
          show(
            await api<GroupOut>(
              args,
              "GET",
              `/workflows/${encodeURIComponent(await resolveId(args, "workflow", args.id))}`,
            ),
            args.json,
          ),
        ),
    }),
    start: okCommand(
      "Start a workflow's root tasks (one that ran before runs again whole)",
      "workflow",
      "POST",
      (id) => `/workflows/${id}/start`,
      rerunNote("workflow"),
    ),
    stop: okCommand(
      "Stop a workflow's running tasks and skip the rest",
      "workflow",
      "POST",
      (id) => `/workflows/${id}/stop`,
    ),
  },
});

/** A group that had run: its ended tasks run again, said so (it printed only "ok"). */
function rerunNote(kind: "job" | "workflow") {
  return (r: Record<string, unknown>, id: string) =>
    r.rerun
      ? `${kind} ${id}: its ${r.rerun} task(s) that had ended run again (a copy instead: propeller ${kind}s create FILE --fresh)`
      : undefined;
}
