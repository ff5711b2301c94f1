import { z } from "zod";
import { typoKey } from "./nearest.ts";
import { parseReference } from "./oci.ts";
import { Requirements } from "./requirements.ts";
import { stateName, TaskState } from "./states.ts";
import {
  BIDI_MESSAGE,
  ClientId,
  envRule,
  MAX_TASK_NAME,
  NO_BIDI,
  scheduleCheck,
  withoutSchedule,
} from "./task-rules.ts";
import { ZERO_TIME } from "./time.ts";

const WASM_MAGIC = "AGFzbQ"; // base64 of "\0asm" (first 4 bytes), plus the start of the version byte

// Inputs: strings, or numbers converted to their literal text (upstream normalises `10` to "10").
export const Inputs = z.array(
  z.union([z.string(), z.number().transform((n) => String(n))], { error: "expected string or number" }),
);

export const Env = z.record(z.string(), z.string({ error: "env values must be strings" }));

/** A client's env: each name one a guest can be given (task-rules.ts). Stored tasks and messages keep `Env`. */
export const ClientEnv = Env.superRefine(envRule);

export const MonitoringProfile = z.looseObject({
  enabled: z.boolean().optional(),
  interval: z.number().nonnegative().optional(),
  collect_cpu: z.boolean().optional(),
  collect_memory: z.boolean().optional(),
  collect_disk_io: z.boolean().optional(),
  collect_threads: z.boolean().optional(),
  collect_file_descriptors: z.boolean().optional(),
  export_to_mqtt: z.boolean().optional(),
  retain_history: z.boolean().optional(),
  history_size: z.number().int().nonnegative().optional(),
});

/** A profile's sampling interval in seconds, 0 for the default; a Go duration arrives in nanoseconds (10^6 and up). */
export const monitorIntervalS = (interval: number): number => (interval >= 1e6 ? interval / 1e9 : interval);
/**
 * Bounds of a task's metrics sampling: a tiny interval (or one so large that a timer overflows to 1 ms) had the
 * proplet sample and publish a thousand times a second, over an ever longer history.
 */
export const MONITOR_INTERVAL_S = { min: 1, max: 86_400 };

/** An inline module's detached signature (base64), as a task and an FL experiment carry it. */
export const Signature = z
  .string()
  .max(64 * 1024)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, "must be standard base64");

export const MAX_MONITOR_HISTORY = 10_000;

/** What a client may ask: the interval and history within bounds (a proplet clamps what other managers send). */
const ClientMonitoringProfile = MonitoringProfile.superRefine((p, ctx) => {
  const s = p.interval === undefined ? 0 : monitorIntervalS(p.interval);
  if (s !== 0 && !(s >= MONITOR_INTERVAL_S.min && s <= MONITOR_INTERVAL_S.max)) {
    ctx.addIssue({
      code: "custom",
      path: ["interval"],
      message: `must be 0 (the default) or ${MONITOR_INTERVAL_S.min} to ${MONITOR_INTERVAL_S.max} seconds (10^6 and more: nanoseconds)`,
    });
  }
  if (p.history_size !== undefined && p.history_size > MAX_MONITOR_HISTORY) {
    ctx.addIssue({ code: "custom", path: ["history_size"], message: `must be at most ${MAX_MONITOR_HISTORY}` });
  }
});

const Base64Wasm = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, "must be standard base64")
  .refine((s) => s === "" || s.startsWith(WASM_MAGIC), "is not a WebAssembly module (no \\0asm magic)");

/**
 * Where a module comes from: an http(s) URL, or an OCI reference (`host[:port]/repo[:tag|@digest]`); empty removes
 * it (a PUT's or clone's). Checked at creation: `nope-registry/foo:1` was taken, and its run failed "not allowed:
 * this proxy serves only modules the manager dispatched", which it had.
 */
const ImageUrl = z
  .string()
  .max(2048, "at most 2048 characters")
  .superRefine((u, ctx) => {
    if (u === "") return;
    if (/^https?:/i.test(u)) {
      if (!/^https?:\/\//i.test(u) || !URL.canParse(u) || !new URL(u).hostname)
        ctx.addIssue({ code: "custom", message: `${JSON.stringify(u)} is not a URL with a host` });
      return;
    }
    const ref = parseReference(u);
    if (typeof ref === "string") ctx.addIssue({ code: "custom", message: `${ref}, or an http(s):// URL` });
  });

// Fields a client may set. Unknown keys are ignored, as upstream; server-owned fields (state, times, results) too.
const ClientFields = {
  name: z
    .string({ error: "is required" })
    .trim()
    .min(1, "is required")
    .max(MAX_TASK_NAME, `at most ${MAX_TASK_NAME} characters`)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    .regex(/^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$/, "must be one line without control characters")
    .regex(NO_BIDI, BIDI_MESSAGE),
  kind: z.enum(["standard", "federated"]).optional(),
  image_url: ImageUrl.optional(),
  file: Base64Wasm.optional(),
  cli_args: z.array(z.string()).nullable().optional(),
  inputs: Inputs.optional(),
  env: ClientEnv.optional(),
  daemon: z.boolean().optional(),
  latent: z.boolean().optional(),
  encrypted: z.boolean().optional(),
  kbs_resource_path: z.string().optional(),
  proplet_id: z.string().optional(),
  depends_on: z.array(ClientId).optional(),
  run_if: z.enum(["", "success", "failure"]).optional(),
  workflow_id: ClientId.optional(),
  job_id: ClientId.optional(),
  monitoring_profile: ClientMonitoringProfile.optional(),
  mode: z.enum(["", "infer", "train"]).optional(),
  schedule: z.string().optional(),
  timezone: z.string().optional(),
  is_recurring: z.boolean().optional(),
  broadcast: z.boolean().optional(),
  priority: z.number().int().min(0).max(100).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  hal_storage_path: z.string().nullable().optional(),
  // Orchestration (ours, not upstream's): limits, retries and cron policies.
  timeout_s: z
    .number()
    .positive()
    .max(7 * 86400)
    .optional(),
  max_retries: z.number().int().min(0).max(100).optional(),
  retry_backoff_s: z.number().positive().max(3600).optional(),
  overlap_policy: z.enum(["skip", "allow"]).optional(),
  misfire_policy: z.enum(["skip", "run_once"]).optional(),
  /** Ours: the most linear memory the task may grow to, in MiB (the proplet's cap is the default and ceiling). */
  max_memory_mb: z.number().int().positive().max(4096).optional(),
  /** Ours: what a proplet must have to run it (labels, runtime, arch, TEE, memory). */
  requirements: Requirements.optional(),
  /**
   * Ours: a detached simple-signing signature (base64, as `skopeo standalone-sign` writes it) over the inline
   * module's sha256, for a site whose trust policy accepts only signed code (docs/ARCHITECTURE.md, "Trusted code").
   */
  signature: Signature.optional(),
};

/** The fields a client may set on a task (the API's create body). */
export const CLIENT_FIELD_NAMES = Object.keys(ClientFields) as (keyof typeof ClientFields)[];

/** A task body's key that nearly names a field (`inptus`): its error, else undefined. */
export const taskTypo = (data: unknown): string | undefined => typoKey(data, CLIENT_FIELD_NAMES);

/** A latent task is deployed on one proplet and invoked there; as a broadcast, its parts ran as plain tasks. */
export const LATENT_BROADCAST = "a latent task cannot be a broadcast";

export const TaskCreate = z
  .object(ClientFields)
  .refine((t) => !(t.broadcast && t.proplet_id), {
    message: "broadcast and proplet_id are mutually exclusive",
    path: ["proplet_id"],
  })
  .refine((t) => !(t.broadcast && t.latent), { message: LATENT_BROADCAST, path: ["latent"] })
  .refine((t) => !t.metadata || JSON.stringify(t.metadata).length <= 1 << 20, {
    message: "exceeds 1MB",
    path: ["metadata"],
  })
  .superRefine(scheduleCheck)
  .superRefine(withoutSchedule);
export type TaskCreate = z.infer<typeof TaskCreate>;

/** A task inside a job or workflow may carry its own id, so `depends_on` can refer to it. */
export const GroupTask = z
  .object({ ...ClientFields, id: ClientId.optional() })
  .refine((t) => !(t.broadcast && t.latent), { message: LATENT_BROADCAST, path: ["latent"] })
  .superRefine(scheduleCheck)
  .superRefine(withoutSchedule);
export type GroupTask = z.infer<typeof GroupTask>;

/** `POST /tasks/{id}/invoke`: a latent task's call (upstream's body; empty is allowed). */
export const InvokeRequest = z.strictObject({ inputs: Inputs.optional(), env: Env.optional() });
export type InvokeRequest = z.infer<typeof InvokeRequest>;

// PUT is a patch: every field optional, `name` may not be emptied.
export const TaskUpdate = z
  .object({ ...ClientFields, name: ClientFields.name.optional() })
  .partial()
  .superRefine(scheduleCheck);
export type TaskUpdate = z.infer<typeof TaskUpdate>;

/**
 * The stored task: what every repository writes and reads back (parsed with this schema). Times are RFC3339
 * strings; `file` is standard base64 as on the wire.
 */
export const Task = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.string(),
  state: z.number().int(),
  image_url: z.string().optional(),
  file: z.string().optional(),
  cli_args: z.array(z.string()).nullable(),
  inputs: z.array(z.string()).optional(),
  env: Env.optional(),
  daemon: z.boolean(),
  latent: z.boolean().optional(),
  encrypted: z.boolean(),
  kbs_resource_path: z.string().optional(),
  proplet_id: z.string().optional(),
  /** Set when the client chose `proplet_id`; otherwise the field records where the task last ran. */
  pinned: z.boolean().optional(),
  depends_on: z.array(z.string()).optional(),
  run_if: z.string().optional(),
  workflow_id: z.string().optional(),
  /** The name its workflow's file gave (server-owned: set when the workflow is created). */
  workflow_name: z.string().optional(),
  job_id: z.string().optional(),
  results: z.unknown().optional(),
  error: z.string().optional(),
  monitoring_profile: MonitoringProfile.optional(),
  start_time: z.string(),
  finish_time: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  mode: z.string().optional(),
  schedule: z.string().optional(),
  next_run: z.string(),
  is_recurring: z.boolean().optional(),
  timezone: z.string().optional(),
  broadcast: z.boolean().optional(),
  priority: z.number().int(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  hal_storage_path: z.string().nullable().optional(),
  timeout_s: z.number().optional(),
  max_retries: z.number().int().optional(),
  retry_backoff_s: z.number().optional(),
  overlap_policy: z.enum(["skip", "allow"]).optional(),
  misfire_policy: z.enum(["skip", "run_once"]).optional(),
  max_memory_mb: z.number().int().optional(),
  requirements: Requirements.optional(),
  signature: z.string().optional(),
  /** A broadcast task's part on one proplet: `broadcast_of` is the task it is part of; `parts` that task's. */
  broadcast_of: z.string().optional(),
  parts: z.array(z.string()).optional(),
  /** The task's id in its workflow's file (its stored id is `<workflow id>.<local id>`). */
  local_id: z.string().optional(),
  /** A schedule that is paused does not fire until resumed; the task and its schedule stay. */
  paused: z.boolean().optional(),
  // Internal bookkeeping, not part of the API view.
  /** Id of the current (or last) run. */
  run_id: z.string().optional(),
  /** Attempt number of the current run within its retry series, from 1. */
  attempt: z.number().int().optional(),
  /** When the task entered the queue (ms since the epoch), while Scheduled. */
  queued_at: z.number().optional(),
  /** When a retry is due (ms since the epoch), while Scheduled after a failure. */
  retry_at: z.number().optional(),
});
export type Task = z.infer<typeof Task>;

export function newTask(id: string, input: TaskCreate, now: string): Task {
  const proplet_id = input.proplet_id;
  return {
    ...input,
    proplet_id: undefined,
    id,
    kind: input.kind ?? "standard",
    state: TaskState.Pending,
    cli_args: input.cli_args ?? null,
    daemon: input.daemon ?? false,
    encrypted: input.encrypted ?? false,
    ...(proplet_id ? { proplet_id, pinned: true } : {}),
    priority: input.priority ?? 50,
    start_time: ZERO_TIME,
    finish_time: ZERO_TIME,
    created_at: now,
    updated_at: now,
    next_run: ZERO_TIME,
  };
}

/**
 * Applies a PUT body. Omitted fields (schedule included) are left alone (docs/ARCHITECTURE.md, "Where we differ
 * from upstream").
 */
export function applyUpdate(task: Task, patch: TaskUpdate, now: string): Task {
  const next: Task = { ...task, updated_at: now };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (k === "proplet_id") {
      next.proplet_id = v as string;
      next.pinned = v !== "";
      continue;
    }
    // An emptied schedule is no schedule (it was kept, and shown, as `"schedule": ""`).
    if (k === "schedule" && v === "") {
      next.schedule = undefined;
      next.is_recurring = undefined;
      continue;
    }
    (next as unknown as Record<string, unknown>)[k] = v;
  }
  return next;
}

/**
 * The task as it starts a run on a proplet. The current run lives in the task (run_id, attempt, proplet_id,
 * start_time) and is stored as a run record when it ends: one write per run instead of two.
 */
export function runningOn(task: Task, propletId: string, runId: string, now: string): Task {
  // Spread and set undefined (JSON leaves it out), not a rest pattern: JavaScriptCore copies for a rest pattern key
  // by key, ~10 times slower, on every dispatch.
  return {
    ...task,
    queued_at: undefined,
    results: undefined,
    state: TaskState.Running,
    proplet_id: propletId,
    run_id: runId,
    start_time: now,
    finish_time: ZERO_TIME,
    updated_at: now,
  };
}

/** The task in its final state after a run (or a stop): no retry pending. */
export function finished(task: Task, state: number, results: unknown, error: string | undefined, now: string): Task {
  return { ...task, state, results, error, finish_time: now, updated_at: now, retry_at: undefined };
}

/** Upstream's redaction: first 10 and last 10 base64 characters around `<REDACTED>`. */
export function redactFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  return file.length <= 20 ? file : `${file.slice(0, 10)}<REDACTED>${file.slice(-10)}`;
}

export type TaskView = Omit<Task, "pinned" | "run_id" | "queued_at" | "retry_at"> & { status: string };

export function taskView(t: Task): TaskView {
  // Left out as undefined keys (JSON drops them) rather than by a rest pattern, which is ~10 times slower here.
  const view: TaskView & Partial<Pick<Task, "pinned" | "run_id" | "queued_at" | "retry_at">> = {
    ...t,
    pinned: undefined,
    run_id: undefined,
    queued_at: undefined,
    retry_at: undefined,
    file: redactFile(t.file),
    status: stateName(t.state),
  };
  return view;
}

/** What a viewer token sees of an `env` value. */
export const HIDDEN_VALUE = "***";

/**
 * A JSON response as a viewer sees it: every `env` object (a task's, a group's tasks', an experiment's) keeps its
 * keys and shows each value as HIDDEN_VALUE, since env may carry credentials only admins should read.
 */
export function hideEnvValues(json: string): string {
  const hide = (key: string, v: unknown) => {
    if (key === "env" && v !== null && typeof v === "object" && !Array.isArray(v))
      return Object.fromEntries(Object.keys(v).map((k) => [k, HIDDEN_VALUE]));
    if (key === "cli_args" && Array.isArray(v)) return hideCliEnv(v);
    return v;
  };
  return JSON.stringify(JSON.parse(json, hide));
}

/** `cli_args` carry env too (`--env=K=V`, or `--env` then `K=V`, as wasm-call.ts reads them): values hidden. */
function hideCliEnv(args: unknown[]): unknown[] {
  const keyOnly = (kv: unknown) =>
    typeof kv === "string" && kv.includes("=") ? `${kv.slice(0, kv.indexOf("="))}=${HIDDEN_VALUE}` : HIDDEN_VALUE;
  return args.map((a, i) => {
    if (typeof a === "string" && a.startsWith("--env=")) return `--env=${keyOnly(a.slice("--env=".length))}`;
    if (i > 0 && args[i - 1] === "--env") return keyOnly(a);
    return a;
  });
}
