import { basename } from "node:path";
import { defineCommand } from "citty";
import { parseMetadataArg } from "../core/metadata.ts";
import { isTerminal, TaskState } from "../core/states.ts";
import type { TaskView } from "../core/task.ts";
import { ZERO_TIME } from "../core/time.ts";
import { action, int, readUserFile, UsageError } from "./args.ts";
import { ApiError, api, type Conn, okCommand, pagedCommand, sse, urlArg } from "./client.ts";
import { example } from "./examples.ts";
import { printJson, printRecord, printTable } from "./output.ts";

/** `--metadata` as a JSON object or upstream's KEY=VALUE pairs; a usage error says what was wrong. */
function metadataArg(s: string): Record<string, unknown> {
  const r = parseMetadataArg(s);
  if (typeof r === "string") throw new UsageError(`--metadata: ${r}`);
  return r;
}

type Page = { offset: number; limit: number; total: number; tasks: TaskView[] };

const list = (v: string | undefined) =>
  v
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "")
    : undefined;

/** Comma-separated KEY=VALUE pairs; `bad` says what is wrong with one that is not. */
function keyValues(v: string | undefined, bad: (pair: string) => string): Record<string, string> | undefined {
  const pairs = list(v);
  if (!pairs) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new UsageError(bad(p));
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

const envPairs = (v: string | undefined) =>
  keyValues(v, (p) => `--env expects KEY=VALUE pairs, got ${JSON.stringify(p)}`);

function seconds(name: string, v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new UsageError(`--${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

function readWasm(path: string): string {
  return readUserFile(path).toString("base64");
}

const taskFields = {
  file: { type: "string", description: "local .wasm file to send inline" },
  example: { type: "string", description: "a module propeller carries, sent inline: add, hello, spin (examples list)" },
  "image-url": { type: "string", description: "http(s) URL or OCI reference of the module" },
  inputs: { type: "string", description: "comma-separated inputs, e.g. 10,20" },
  "cli-args": { type: "string", description: "comma-separated runtime options, e.g. --dir=/data::/data,--env=K=V" },
  env: { type: "string", description: "comma-separated KEY=VALUE environment for the task" },
  daemon: { type: "boolean", description: "long-running task, Running until stopped or it exits" },
  "proplet-id": { type: "string", description: "pin the task to this proplet" },
  priority: { type: "string", description: "0-100, default 50; higher runs first when proplets are busy" },
  schedule: { type: "string", description: "cron: 5 fields, or 6 with leading seconds, e.g. '*/2 * * * * *'" },
  timezone: { type: "string", description: "IANA time zone of the schedule, default UTC" },
  recurring: {
    type: "boolean",
    description: "with --schedule: fire every time (default), --no-recurring fires once",
    default: true,
  },
  "is-recurring": {
    type: "boolean",
    description: "upstream's spelling of --recurring; note upstream fires once unless it is given, we recur by default",
  },
  latent: { type: "boolean", description: "deploy once, then invoke many times (upstream's latent tasks)" },
  encrypted: { type: "boolean", description: "the module is encrypted: the proplet needs a TEE and its KBS" },
  "kbs-resource-path": { type: "string", description: "where the key broker holds the module's key" },
  broadcast: { type: "boolean", description: "send to every proplet instead of one" },
  mode: { type: "string", description: "infer | train (federated tasks)" },
  kind: { type: "string", description: "standard | federated" },
  metadata: {
    type: "string",
    description: "your own data, kept with the task: KEY=VALUE[,KEY2=VALUE2] or a JSON object",
  },
  require: {
    type: "string",
    description:
      "what a proplet needs to run it: KEY=VALUE labels (its PROPLET_TAGS) and runtime=, arch=, tee=, min_memory_mb=",
  },
  overlap: { type: "string", description: "skip | allow: a firing while the last run is active (default skip)" },
  misfire: { type: "string", description: "skip | run_once: firings missed while the manager was down (default skip)" },
  timeout: { type: "string", description: "seconds a run may take before it fails" },
  retries: { type: "string", description: "re-runs after a failure" },
  backoff: { type: "string", description: "seconds before the first retry, doubling after (default 1)" },
} as const;

const REQUIREMENT_KEYS = new Set(["runtime", "arch", "tee", "min_memory_mb"]);

/** `--require gpu=true,arch=aarch64`: the named keys are requirements of their own, any other is a label. */
function requirementsArg(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(keyValues(text, (p) => `--require: "${p}" is not KEY=VALUE`) ?? {})) {
    if (k === "min_memory_mb") out[k] = int("--require min_memory_mb", v, 1, 1 << 24);
    else if (REQUIREMENT_KEYS.has(k)) out[k] = v;
    else labels[k] = v;
  }
  if (Object.keys(labels).length) out.labels = labels;
  return out;
}

type FieldArgs = { [K in keyof typeof taskFields]?: string | boolean };

function body(a: FieldArgs): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (a.file && a.example) throw new UsageError("--file and --example are two ways to give the module: choose one");
  if (a.file) b.file = readWasm(String(a.file));
  if (a.example) b.file = Buffer.from(example(String(a.example))).toString("base64");
  if (a["image-url"]) b.image_url = a["image-url"];
  if (a.inputs !== undefined) b.inputs = list(String(a.inputs)) ?? [];
  if (a["cli-args"]) b.cli_args = list(String(a["cli-args"]));
  if (a.env) b.env = envPairs(String(a.env));
  if (a.daemon !== undefined) b.daemon = a.daemon;
  if (a["proplet-id"]) b.proplet_id = a["proplet-id"];
  if (a.priority !== undefined) b.priority = int("priority", String(a.priority), 0, 100);
  if (a.schedule) {
    b.schedule = a.schedule;
    b.is_recurring = a["is-recurring"] ?? a.recurring !== false;
  }
  for (const k of ["latent", "encrypted", "broadcast"] as const) if (a[k] !== undefined) b[k] = a[k];
  if (a["kbs-resource-path"]) b.kbs_resource_path = a["kbs-resource-path"];
  if (a.mode) b.mode = a.mode;
  if (a.kind) b.kind = a.kind;
  if (a.metadata) b.metadata = metadataArg(String(a.metadata));
  if (a.require) b.requirements = requirementsArg(String(a.require));
  if (a.timezone) b.timezone = a.timezone;
  if (a.overlap) b.overlap_policy = a.overlap;
  if (a.misfire) b.misfire_policy = a.misfire;
  if (a.timeout !== undefined) b.timeout_s = seconds("timeout", String(a.timeout));
  if (a.retries !== undefined) b.max_retries = int("retries", String(a.retries), 0, 100);
  if (a.backoff !== undefined) b.retry_backoff_s = seconds("backoff", String(a.backoff));
  return b;
}

/** Every field of a task, times with how long ago (or until) they are, and "never" for one never set. */
function show(t: TaskView, json: boolean): void {
  if (json) {
    printJson(t);
    return;
  }
  const { status, state, start_time, finish_time, created_at, updated_at, next_run, ...rest } = t;
  const times = { created_at, updated_at, start_time, finish_time, ...(t.schedule ? { next_run } : {}) };
  printRecord({
    id: t.id,
    name: t.name,
    status: `${status} (${state})`,
    ...Object.fromEntries(Object.entries(rest).filter(([k, v]) => k !== "id" && k !== "name" && v !== undefined)),
    ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k, when(v)])),
  });
}

/** `2026-11-28T10:00:00.000Z (3 min ago)`, or "never" for upstream's zero time. */
export function when(iso: string | undefined, now = Date.now()): string {
  if (!iso || iso === ZERO_TIME) return "never";
  const ms = Date.parse(iso) - now;
  const abs = Math.abs(ms);
  const span =
    abs < 60_000
      ? `${Math.round(abs / 1000)} s`
      : abs < 3_600_000
        ? `${Math.round(abs / 60_000)} min`
        : abs < 86_400_000
          ? `${Math.round(abs / 3_600_000)} h`
          : `${Math.round(abs / 86_400_000)} d`;
  return `${iso} (${ms <= 0 ? `${span} ago` : `in ${span}`})`;
}

async function waitFor(conn: Conn, id: string, timeoutS: number): Promise<TaskView> {
  const deadline = Date.now() + timeoutS * 1000;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    const t = await api<TaskView>(conn, "GET", `/tasks/${id}`);
    if (isTerminal(t.state)) return t;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${t.status} after ${timeoutS}s`);
    await Bun.sleep(delay);
  }
}

/** Prints a finished task's outcome: the result on stdout, or the error on stderr with exit code 1. */
function report(t: TaskView, json: boolean): void {
  if (json) printJson(t);
  else if (t.state === TaskState.Completed)
    process.stdout.write(
      `${typeof t.results === "string" ? t.results.replace(/\n$/, "") : JSON.stringify(t.results)}\n`,
    );
  if (t.state !== TaskState.Completed) {
    process.stderr.write(`task ${t.id} ${t.status}${t.error ? `: ${t.error}` : ""}\n`);
    process.exitCode = 1;
  }
}

interface Chunk {
  stream: "stdout" | "stderr";
  data: string;
}
interface Ending {
  state: number;
  status: string;
  error?: string;
}

/**
 * `tasks logs`: the kept output, or with follow the stream until the task ends. A task that streamed nothing and
 * has ended shows its result, which is where a short task's output is. Exits 1 when the task did not complete.
 */
async function logs(conn: Conn & { json: boolean }, id: string, follow: boolean): Promise<void> {
  const print = (c: Chunk) => (c.stream === "stderr" ? process.stderr : process.stdout).write(c.data);
  let printed = false;
  let end: Ending | undefined;
  if (follow) {
    for await (const e of sse(conn, `/tasks/${encodeURIComponent(id)}/logs?follow=true`)) {
      if (conn.json) process.stdout.write(`${JSON.stringify({ event: e.event, ...JSON.parse(e.data) })}\n`);
      if (e.event === "output") {
        if (!conn.json) print(JSON.parse(e.data) as Chunk);
        printed = true;
      } else if (e.event === "end") end = JSON.parse(e.data) as Ending;
      // serve ended the stream early: its token was revoked or expired, or the session signed out.
      else if (e.event === "closed") throw new ApiError(`the log stream was closed: ${JSON.parse(e.data).reason}`);
    }
  } else {
    const r = await api<Ending & { chunks: Chunk[] }>(conn, "GET", `/tasks/${encodeURIComponent(id)}/logs`);
    if (conn.json) return printJson(r);
    for (const c of r.chunks) print(c);
    printed = r.chunks.length > 0;
    if (isTerminal(r.state)) end = r;
  }
  if (!end || conn.json) return;
  if (!printed) {
    const { results } = await api<{ results: unknown }>(conn, "GET", `/tasks/${encodeURIComponent(id)}/results`);
    if (typeof results === "string" && results) process.stdout.write(results.endsWith("\n") ? results : `${results}\n`);
  }
  if (end.state !== TaskState.Completed) {
    throw new ApiError(`task ${id} ended ${end.status}${end.error ? `: ${end.error}` : ""}`);
  }
}

const idArg = { id: { type: "positional", description: "task id", required: true } } as const;

export const tasksCommand = defineCommand({
  meta: { name: "tasks", description: "Create, run and inspect tasks" },
  subCommands: {
    create: defineCommand({
      meta: { description: "Create a task (and with --start run it, with --wait print its result)" },
      args: {
        name: { type: "positional", description: "task name; for a core module, the export to call", required: true },
        ...taskFields,
        start: { type: "boolean", description: "start it right away" },
        wait: { type: "boolean", description: "with --start: wait for the task to finish and print its result" },
        "wait-timeout": { type: "string", description: "seconds to wait, default 300", default: "300" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          if (args.wait && !args.start) throw new UsageError("--wait waits for a run: give --start too");
          const t = await api<TaskView>(args, "POST", "/tasks", { name: args.name, ...body(args) });
          if (!args.start) return show(t, args.json);
          try {
            await api(args, "POST", `/tasks/${t.id}/start`);
          } catch (e) {
            // A start that cannot happen creates nothing: no Pending task is left behind.
            await api(args, "DELETE", `/tasks/${t.id}`).catch(() => {});
            throw new ApiError(`${e instanceof Error ? e.message : e} (the task was not kept)`);
          }
          if (!args.wait)
            return args.json ? printJson(await api(args, "GET", `/tasks/${t.id}`)) : process.stdout.write(`${t.id}\n`);
          report(await waitFor(args, t.id, int("wait-timeout", args["wait-timeout"], 1, 86400)), args.json);
        }),
    }),
    list: defineCommand({
      meta: { description: "List tasks, newest first" },
      args: {
        offset: { type: "string", alias: ["o"] as string[], default: "0" },
        limit: { type: "string", alias: ["l"] as string[], default: "100" },
        metadata: { type: "string", description: "only tasks whose metadata holds KEY=VALUE[,KEY2=VALUE2]" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const filter = args.metadata
            ? `&metadata=${encodeURIComponent(JSON.stringify(metadataArg(String(args.metadata))))}`
            : "";
          const p = await api<Page>(
            args,
            "GET",
            `/tasks?offset=${int("offset", args.offset, 0, 1e9)}&limit=${int("limit", args.limit, 1, 1000)}${filter}`,
          );
          if (args.json) return printJson(p);
          printTable(p.tasks as unknown as Record<string, unknown>[], [
            ["ID", "id"],
            ["NAME", "name"],
            ["STATUS", "status"],
            ["PROPLET", "proplet_id"],
            ["RESULTS", "results"],
            ["ERROR", "error"],
          ]);
          process.stdout.write(`${p.tasks.length} of ${p.total} task(s)\n`);
        }),
    }),
    get: defineCommand({
      meta: { description: "Show one task" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) => action(async () => show(await api<TaskView>(args, "GET", `/tasks/${args.id}`), args.json)),
    }),
    update: defineCommand({
      meta: { description: "Change fields of a task (only the flags given)" },
      args: { ...idArg, name: { type: "string", description: "new name" }, ...taskFields, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const b = body(args);
          if (args.name) b.name = args.name;
          if (Object.keys(b).length === 0) throw new UsageError("nothing to update: give at least one flag");
          show(await api<TaskView>(args, "PUT", `/tasks/${args.id}`, b), args.json);
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
        "wait-timeout": { type: "string", default: "300" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          await api(args, "POST", `/tasks/${args.id}/start`);
          if (args.wait)
            report(await waitFor(args, args.id, int("wait-timeout", args["wait-timeout"], 1, 86400)), args.json);
          else process.stdout.write("ok\n");
        }),
    }),
    stop: okCommand("Stop a running or queued task", "task", "POST", (id) => `/tasks/${id}/stop`),
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
        inputs: { type: "string", description: "comma-separated inputs of this call" },
        env: { type: "string", description: "KEY=VALUE[,…] added to the task's env for this call" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const body: Record<string, unknown> = {};
          if (args.inputs !== undefined) body.inputs = list(String(args.inputs)) ?? [];
          if (args.env) body.env = envPairs(String(args.env));
          const r = await api<{ invoked: true; results: string }>(args, "POST", `/tasks/${args.id}/invoke`, body);
          if (args.json) printJson(r);
          else process.stdout.write(`${r.results.replace(/\n$/, "")}\n`);
        }),
    }),
    results: defineCommand({
      meta: { description: "Print a task's results" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const r = await api<{ results: unknown }>(args, "GET", `/tasks/${args.id}/results`);
          if (args.json) printJson(r);
          else
            process.stdout.write(
              `${typeof r.results === "string" ? r.results.replace(/\n$/, "") : JSON.stringify(r.results)}\n`,
            );
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
            `/tasks/${args.id}/runs?offset=${int("offset", args.offset, 0, 1e9)}&limit=${int("limit", args.limit, 1, 1000)}`,
          );
          if (args.json) return printJson(p);
          printTable(p.runs, [
            ["RUN", "run_id"],
            ["ATTEMPT", "attempt"],
            ["STATUS", "status"],
            ["PROPLET", "proplet_id"],
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
          show(await api<TaskView>(args, "PUT", `/tasks/${args.id}/upload`, form), args.json);
        }),
    }),
  },
});
