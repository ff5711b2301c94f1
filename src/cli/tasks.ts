import { basename } from "node:path";
import { defineCommand } from "citty";
import { TaskState } from "../core/states.ts";
import type { TaskView } from "../core/task.ts";
import { action, int, UsageError } from "./args.ts";
import { ApiError, api, type Conn, okCommand, okLine, pagedCommand, resolveId, urlArg } from "./client.ts";
import { printJson, printTable, terminalSafe } from "./output.ts";
import {
  body,
  entryProblem,
  envPairs,
  functionArg,
  inputsArg,
  metadataArg,
  readWasm,
  taskFields,
  unsetFields,
} from "./task-fields.ts";
import { logs, report, resultLine, show, waitFor } from "./task-view.ts";

// `propeller tasks …`: the command tree. The flags of a task are task-fields.ts, what is printed task-view.ts.

type Page = {
  offset: number;
  limit: number;
  total: number;
  tasks: (TaskView & { proplet_name?: string; results_preview?: string })[];
};

const idArg = {
  id: {
    type: "positional",
    description: "task id (or a unique prefix of it, or its name when no other task has it)",
    required: true,
  },
} as const;

const waitTimeoutArg = { type: "string", description: "seconds to wait", default: "300" } as const;

/** `--start`, `--wait`, `--wait-timeout` of the commands that make a task (`what` is what they make). */
const startArgs = (what: string) =>
  ({
    start: { type: "boolean", description: `start ${what} right away` },
    wait: { type: "boolean", description: `with --start: wait for ${what} to finish and print its result` },
    "wait-timeout": waitTimeoutArg,
  }) as const;

const waitSeconds = (args: { "wait-timeout": string }) => int("wait-timeout", args["wait-timeout"], 1, 86400);

export const tasksCommand = defineCommand({
  meta: { name: "tasks", description: "Create, run and inspect tasks" },
  subCommands: {
    create: defineCommand({
      meta: { description: "Create a task (and with --start run it, with --wait print its result)" },
      args: {
        name: {
          type: "positional",
          description: "task name; for a core module also the export called, unless --function names another",
          required: true,
        },
        ...taskFields,
        ...functionArg,
        ...startArgs("the task"),
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          if (args.wait && !args.start) throw new UsageError("--wait waits for a run: give --start too");
          // A one-time schedule is when it runs: with --start it ran now and again at that time.
          if (args.start && args.schedule && args.recurring === false)
            throw new UsageError(
              "--start runs the task now, and --no-recurring --schedule once more at its time: give one of them",
            );
          const b = await withProplet(args, body(args));
          // About to run: a module without the export is refused now. Created only: said, as it may be updated.
          const missing = entryProblem(args.name, b, args.function);
          if (missing && args.start) throw new UsageError(missing);
          if (missing) process.stderr.write(`warning: ${missing}\n`);
          // Upstream's flow allows a task without a module (uploaded later); said, as a forgotten --file is likelier.
          if (!b.file && !b.image_url && !args.start)
            process.stderr.write(
              "warning: the task has no module yet: give --file, --example or --image-url, or upload one later (propeller tasks upload ID FILE)\n",
            );
          const t = await api<TaskView>(args, "POST", "/tasks", { name: args.name, ...b });
          if (!args.start) return show(t, args.json);
          try {
            await api(args, "POST", `/tasks/${encodeURIComponent(t.id)}/start`);
          } catch (e) {
            // A start that cannot happen creates nothing: no Pending task is left behind.
            await api(args, "DELETE", `/tasks/${encodeURIComponent(t.id)}`).catch(() => {});
            throw new ApiError(`${e instanceof Error ? e.message : e} (the task was not kept)`);
          }
          if (!args.wait)
            return args.json
              ? printJson(await api(args, "GET", `/tasks/${encodeURIComponent(t.id)}`))
              : process.stdout.write(`${t.id}\n`);
          report(await waitFor(args, t.id, waitSeconds(args)), args.json);
        }),
    }),
    list: defineCommand({
      meta: { description: "List tasks, newest first" },
      args: {
        offset: { type: "string", alias: ["o"] as string[], default: "0" },
        limit: { type: "string", alias: ["l"] as string[], default: "100" },
        metadata: { type: "string", description: "only tasks whose metadata holds KEY=VALUE[,KEY2=VALUE2]" },
        state: { type: "string", description: "only tasks in these states: Failed, or Failed,Interrupted, or 4" },
        search: { type: "string", description: "only tasks whose name (any case) or id holds this text" },
        rounds: { type: "boolean", description: "list federated-learning round tasks too (left out by default)" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          // The server checks each (400 naming it): GET /tasks?state&q&include_rounds.
          const find = new URLSearchParams();
          if (args.metadata) find.set("metadata", JSON.stringify(metadataArg(String(args.metadata))));
          if (args.state) find.set("state", String(args.state));
          if (args.search) find.set("q", String(args.search));
          if (args.rounds) find.set("include_rounds", "true");
          const filter = find.size ? `&${find}` : "";
          const p = await api<Page>(
            args,
            "GET",
            `/tasks?offset=${int("offset", args.offset, 0, 1e9)}&limit=${int("limit", args.limit, 1, 1000)}${filter}`,
          );
          if (args.json) return printJson(p);
          // The proplet by its name (its identity's), as `proplets list` shows it.
          // A long result is listed as its preview (`tasks results ID` prints it whole).
          const rows = p.tasks.map((t) => ({
            ...t,
            proplet: t.proplet_name ?? t.proplet_id,
            results: t.results ?? (t.results_preview === undefined ? undefined : `${t.results_preview}…`),
          }));
          printTable(rows as unknown as Record<string, unknown>[], [
            ["ID", "id"],
            ["NAME", "name"],
            ["STATUS", "status"],
            ["PROPLET", "proplet"],
            ["RESULTS", "results"],
            ["ERROR", "error"],
          ]);
          process.stdout.write(`${p.tasks.length} of ${p.total} task(s)\n`);
        }),
    }),
    get: defineCommand({
      meta: { description: "Show one task" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () => show(await api<TaskView>(args, "GET", `/tasks/${encodeURIComponent(args.id)}`), args.json)),
    }),
    update: defineCommand({
      meta: { description: "Change fields of a task (only the flags given)" },
      args: { ...idArg, name: { type: "string", description: "new name" }, ...taskFields, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const b = await withProplet(args, body(args));
          if (args.name) b.name = args.name;
          if (Object.keys(b).length === 0) throw new UsageError("nothing to update: give at least one flag");
          show(await api<TaskView>(args, "PUT", `/tasks/${encodeURIComponent(args.id)}`, b), args.json);
        }),
    }),
    clone: defineCommand({
      meta: { description: "Copy a task, its module included, with the flags given changed (and --start it)" },
      args: {
        ...idArg,
        name: { type: "string", description: "the copy's name (default the original's)" },
        ...taskFields,
        unset: {
          type: "string",
          description: "comma-separated fields the copy leaves out, by flag or field name, e.g. timeout,schedule",
        },
        ...startArgs("the copy"),
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          if (args.wait && !args.start) throw new UsageError("--wait waits for a run: give --start too");
          const b = await withProplet(args, body(args));
          if (args.name) b.name = args.name;
          if (args.unset) b.unset = unsetFields(args.unset);
          const t = await api<TaskView>(args, "POST", `/tasks/${encodeURIComponent(args.id)}/clone`, b);
          if (args.start) await api(args, "POST", `/tasks/${encodeURIComponent(t.id)}/start`);
          if (args.wait) return report(await waitFor(args, t.id, waitSeconds(args)), args.json);
          if (args.json) return show(t, true);
          process.stdout.write(`${t.id}\n`);
        }),
    }),
    delete: okCommand("Delete a task (a running one is stopped first)", "task", "DELETE", (id) => `/tasks/${id}`),
    pause: okCommand(
      "Pause a task's schedule: it does not fire until resumed",
      "task",
      "POST",
      (id) => `/tasks/${id}/pause`,
    ),
    resume: okCommand("Resume a paused schedule from its next time", "task", "POST", (id) => `/tasks/${id}/resume`),
    metrics: pagedCommand("A task's metrics samples, newest first", "task", "metrics", (id) => `/tasks/${id}/metrics`),
    start: defineCommand({
      meta: { description: "Start a task on a proplet" },
      args: {
        ...idArg,
        wait: { type: "boolean", description: "wait for it to finish and print its result" },
        "wait-timeout": waitTimeoutArg,
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          await api(args, "POST", `/tasks/${encodeURIComponent(args.id)}/start`);
          if (args.wait) report(await waitFor(args, args.id, waitSeconds(args)), args.json);
          else process.stdout.write("ok\n");
        }),
    }),
    stop: defineCommand({
      meta: { description: "Stop a running or queued task (its schedule goes on: `tasks pause` holds that)" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const id = await resolveId(args, "task", args.id);
          const r = await api<{ next_run?: string }>(args, "POST", `/tasks/${encodeURIComponent(id)}/stop`);
          process.stdout.write(okLine(args.json, r));
          if (r.next_run && !args.json)
            process.stderr.write(
              `task ${id}: its schedule goes on (next run ${r.next_run}): propeller tasks pause ${id} holds it\n`,
            );
        }),
    }),
    logs: defineCommand({
      meta: {
        description:
          "Print a running task's output (stdout, and stderr on stderr), as its proplet streams it; with --follow, " +
          "until the task ends. The manager keeps the last 1 MiB of each task's current run, in memory; a task " +
          "that ends within 250 ms streams nothing, and its output is its result",
      },
      args: {
        ...idArg,
        follow: { type: "boolean", alias: ["f"] as string[], description: "keep printing until the task ends" },
        ...urlArg,
      },
      run: ({ args }) => action(() => logs(args, args.id, Boolean(args.follow))),
    }),
    invoke: defineCommand({
      meta: { description: "Call a deployed latent task (created with --latent, then started) and print its answer" },
      args: {
        ...idArg,
        inputs: {
          type: "string",
          description: 'comma-separated inputs of this call (a JSON list, object or "string" stays one)',
        },
        env: { type: "string", description: "KEY=VALUE[,…] added to the task's env for this call" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const body: Record<string, unknown> = {};
          if (args.inputs !== undefined) body.inputs = inputsArg(String(args.inputs));
          if (args.env) body.env = envPairs(String(args.env));
          const r = await api<{ invoked: true; results: string }>(
            args,
            "POST",
            `/tasks/${encodeURIComponent(args.id)}/invoke`,
            body,
          );
          if (args.json) printJson(r);
          else process.stdout.write(`${r.results.replace(/\n$/, "")}\n`);
        }),
    }),
    results: defineCommand({
      meta: { description: "Print a task's results (exit 1, saying why, unless it Completed)" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          // The task itself carries its results whole, with its state: one request.
          const t = await api<TaskView>(args, "GET", `/tasks/${encodeURIComponent(args.id)}`);
          const results = t.results ?? null;
          if (args.json) printJson({ results });
          else if (results !== null || t.state === TaskState.Completed) process.stdout.write(resultLine(results));
          // A failed task's partial output, a running one's nothing: said so, and not a success for a script.
          if (t.state !== TaskState.Completed) {
            const why = t.error ? `: ${terminalSafe(t.error)}` : "";
            const what = results === null ? "no results" : "what it printed is above";
            process.stderr.write(`task ${t.id} is ${t.status}${why} (${what})\n`);
            process.exitCode = 1;
          }
        }),
    }),
    runs: defineCommand({
      meta: { description: "List a task's runs, newest first" },
      args: {
        ...idArg,
        offset: { type: "string", default: "0" },
        limit: { type: "string", default: "100" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const p = await api<{ total: number; runs: Record<string, unknown>[] }>(
            args,
            "GET",
            `/tasks/${encodeURIComponent(args.id)}/runs?offset=${int("offset", args.offset, 0, 1e9)}&limit=${int("limit", args.limit, 1, 1000)}`,
          );
          if (args.json) return printJson(p);
          // A proplet by its name, as tasks list and the console show it (the id when it has none or is gone).
          const known = await api<{ proplets: { id: string; name?: string }[] }>(args, "GET", "/proplets?limit=1000")
            .then((r) => new Map(r.proplets.map((x) => [x.id, x.name ?? x.id])))
            .catch(() => new Map<string, string>());
          const named = p.runs.map((r) => ({ ...r, proplet: known.get(String(r.proplet_id)) ?? r.proplet_id }));
          printTable(named, [
            ["RUN", "run_id"],
            ["ATTEMPT", "attempt"],
            ["STATUS", "status"],
            ["PROPLET", "proplet"],
            ["STARTED", "started_at"],
            ["FINISHED", "finished_at"],
            ["RESULTS", "results"],
            ["ERROR", "error"],
          ]);
          process.stdout.write(`${p.runs.length} of ${p.total} run(s)
`);
        }),
    }),
    upload: defineCommand({
      meta: { description: "Attach a .wasm file to a task" },
      args: { ...idArg, file: { type: "positional", description: "path to a .wasm file", required: true }, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const form = new FormData();
          form.set("file", new Blob([Buffer.from(readWasm(args.file), "base64")]), basename(args.file));
          show(await api<TaskView>(args, "PUT", `/tasks/${encodeURIComponent(args.id)}/upload`, form), args.json);
        }),
    }),
  },
});

/** `--proplet-id` takes a unique prefix, as every id the CLI takes. */
async function withProplet(conn: Conn, b: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (typeof b.proplet_id === "string") b.proplet_id = await resolveId(conn, "proplet", b.proplet_id);
  return b;
}
