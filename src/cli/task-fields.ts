import { splitInputs } from "../core/inputs-arg.ts";
import { parseMetadataArg } from "../core/metadata.ts";
import { CLIENT_FIELD_NAMES } from "../core/task.ts";
import { chooseEntry } from "../core/wasm-call.ts";
import { inspect } from "../core/wasm-info.ts";
import { int, nearest, readUserFile, UsageError } from "./args.ts";
import { example } from "./examples.ts";

// What `tasks create` and `tasks update` send: their flags turned into a task body (the REST API's field names),
// each flag checked with a usage error naming it.

/** `--metadata` as a JSON object or upstream's KEY=VALUE pairs; a usage error says what was wrong. */
export function metadataArg(s: string): Record<string, unknown> {
  const r = parseMetadataArg(s);
  if (typeof r === "string") throw new UsageError(`--metadata: ${r}`);
  return r;
}

/** `--inputs`: split at commas, a JSON list, object or string kept whole (core/inputs-arg.ts). */
export function inputsArg(v: string): string[] {
  const r = splitInputs(v);
  if (typeof r === "string") throw new UsageError(`--inputs: ${r}`);
  return r;
}

export const list = (v: string | undefined) =>
  v
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "")
    : undefined;

// The flags whose field has another name: `--unset timeout` means the field `--timeout` sets.
const FLAG_FIELD: Record<string, string> = {
  timeout: "timeout_s",
  retries: "max_retries",
  backoff: "retry_backoff_s",
  overlap: "overlap_policy",
  misfire: "misfire_policy",
  require: "requirements",
  recurring: "is_recurring",
};

/** `--unset`'s names, a flag's (`timeout`, `proplet-id`) or a field's (`timeout_s`), as the fields they are. */
export function unsetFields(v: string): string[] {
  const fields = CLIENT_FIELD_NAMES as string[];
  return (list(v) ?? []).map((name) => {
    const f = FLAG_FIELD[name.replace(/^--/, "")] ?? name.replace(/^--/, "").replaceAll("-", "_");
    if (fields.includes(f)) return f;
    const near = nearest(f, [...fields, ...Object.keys(FLAG_FIELD)]);
    throw new UsageError(
      `--unset ${name}: not a task field${near ? ` (did you mean ${near}?)` : ""}; the fields: ${fields.join(", ")}`,
    );
  });
}

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

export const envPairs = (v: string | undefined) =>
  keyValues(v, (p) => `--env expects KEY=VALUE pairs, got ${JSON.stringify(p)}`);

function seconds(name: string, v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new UsageError(`--${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

export function readWasm(path: string): string {
  return readUserFile(path).toString("base64");
}

export const taskFields = {
  file: { type: "string", description: "local .wasm file to send inline" },
  example: { type: "string", description: "a module propeller carries, sent inline: add, hello, spin (examples list)" },
  "image-url": { type: "string", description: "http(s) URL or OCI reference of the module" },
  signature: {
    type: "string",
    description:
      "the inline module's signature, for a site whose trust policy requires one: signedBy, a simple-signing one over its sha256 (skopeo standalone-sign); sigstoreSigned, cosign's blob signature (cosign sign-blob --key)",
  },
  inputs: {
    type: "string",
    description: 'comma-separated inputs, e.g. 10,20; a JSON list, object or "string" stays one input: [1,2,3],2',
  },
  "cli-args": { type: "string", description: "comma-separated runtime options, e.g. --dir=/data::/data,--env=K=V" },
  env: { type: "string", description: "comma-separated KEY=VALUE environment for the task" },
  daemon: { type: "boolean", description: "long-running task, Running until stopped or it exits" },
  "proplet-id": {
    type: "string",
    description: "pin the task to this proplet (its id, a unique prefix of it, or its name)",
  },
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
  "max-memory-mb": {
    type: "string",
    description: "the most linear memory a run may grow to, in MiB (the proplet's cap is the default and ceiling)",
  },
  retries: { type: "string", description: "re-runs after a failure" },
  backoff: { type: "string", description: "seconds before the first retry, doubling after (default 1)" },
} as const;

/** `tasks create --function`: not in `update`, where it would replace the task's other `cli_args`. */
export const functionArg = {
  function: {
    type: "string",
    description:
      "the export to call (sent as cli_args --invoke=NAME); default the task name, as upstream, else _start, main or run",
  },
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

export type FieldArgs = { [K in keyof typeof taskFields | "function"]?: string | boolean };

export function body(a: FieldArgs): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (a.file && a.example) throw new UsageError("--file and --example are two ways to give the module: choose one");
  if (a.file) b.file = readWasm(String(a.file));
  if (a.example) b.file = Buffer.from(example(String(a.example))).toString("base64");
  if (a["image-url"]) b.image_url = a["image-url"];
  if (a.signature) {
    if (!b.file) throw new UsageError("--signature signs an inline module: give --file or --example too");
    b.signature = readUserFile(String(a.signature)).toString("base64");
  }
  if (a.inputs !== undefined) b.inputs = inputsArg(String(a.inputs));
  if (a["cli-args"]) b.cli_args = list(String(a["cli-args"]));
  if (a.function) {
    const given = (b.cli_args as string[] | undefined) ?? [];
    if (given.some((x) => x === "--invoke" || x.startsWith("--invoke=")))
      throw new UsageError("--function and --invoke in --cli-args both name the export: give one");
    b.cli_args = [...given, `--invoke=${a.function}`];
  }
  if (a.env) b.env = envPairs(String(a.env));
  if (a.daemon !== undefined) b.daemon = a.daemon;
  if (a["proplet-id"]) b.proplet_id = a["proplet-id"];
  if (a.priority !== undefined) b.priority = int("priority", String(a.priority), 0, 100);
  // `--schedule ''` is given too: in `update` it removes the schedule (it said "nothing to update").
  if (a.schedule !== undefined) {
    b.schedule = a.schedule;
    if (a.schedule) b.is_recurring = a["is-recurring"] ?? a.recurring !== false;
  } else if (a.recurring === false || a["is-recurring"] !== undefined)
    throw new UsageError("--no-recurring and --is-recurring go with --schedule: give the schedule too");
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
  if (a["max-memory-mb"] !== undefined) b.max_memory_mb = int("max-memory-mb", String(a["max-memory-mb"]), 1, 4096);
  if (a.retries !== undefined) b.max_retries = int("retries", String(a.retries), 0, 100);
  if (a.backoff !== undefined) b.retry_backoff_s = seconds("backoff", String(a.backoff));
  return b;
}

const CORE_MODULE = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/**
 * Before a task is created: whether a plain core module sent inline has the export the proplet would call
 * (core/wasm-call.ts chooseEntry, the same rule), else the task would only fail on the proplet. Components,
 * encrypted and federated modules are left to the proplet.
 */
export function entryProblem(name: string, b: Record<string, unknown>, invoke: string | undefined): string | undefined {
  if (typeof b.file !== "string" || b.encrypted || b.kind === "federated") return undefined;
  const bytes = Buffer.from(b.file, "base64");
  if (!CORE_MODULE.every((x, i) => bytes[i] === x)) return undefined;
  let functions: Map<string, unknown>;
  try {
    functions = inspect(bytes).functions;
  } catch {
    return undefined; // a malformed module: the proplet says what is wrong with it
  }
  const entry = chooseEntry(functions as Parameters<typeof chooseEntry>[0], name, invoke);
  if (typeof entry === "string") {
    const exported = [...functions.keys()];
    const hint = exported.length ? ` (e.g. --function ${exported[0]})` : "";
    return `${entry}: give the export to call with --function${hint}`;
  }
  return undefined;
}
