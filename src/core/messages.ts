import { z } from "zod";
import { jsonSize, MAX_JSON_DEPTH, nestedDeeperThan } from "./json.ts";
import { MAX_TASKS_ANNOUNCED, PropletMetadata } from "./proplet.ts";
import { TaskState } from "./states.ts";
import { Env, Inputs, MonitoringProfile, type Task } from "./task.ts";
import { Timestamp } from "./time.ts";

// MQTT payloads (docs/ARCHITECTURE.md, "Wire protocol") with upstream's keys. Strict in what we send, liberal in what
// we accept.

// Upstream sends null for absent values; treat null as absent so the output keeps optional keys.
const nullToUndef = <T extends z.ZodType>(s: T) => z.preprocess((v) => (v === null ? undefined : v), s.optional());
const flag = z
  .boolean()
  .nullable()
  .optional()
  .transform((v) => v ?? false);

// Ours are UUIDs; the charset keeps a hostile peer's id from breaking a line of a proplet's run record or a log.
// The patterns and bounds below are shared with the quick checks (messages-plain.ts).
export const RUN_ID_CHARS = /^[A-Za-z0-9._:-]+$/;
export const MODULE_DIGEST = /^sha256:[a-f0-9]{64}$/;
export const MAX_SIGNATURE_CHARS = 96 * 1024;
const RunId = z.string().min(1).max(64).regex(RUN_ID_CHARS, "a run id is letters, digits and . _ : - only");

/** Runs one heartbeat may list: as many as a proplet may run, and as many results as its outbox may hold. */
const MAX_LISTED_RUNS = MAX_TASKS_ANNOUNCED + 10_000;

/** manager → proplet, `control/manager/start`. */
export const StartMsg = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  state: z.number().int().optional(),
  image_url: nullToUndef(z.string()),
  file: nullToUndef(z.string()),
  inputs: nullToUndef(Inputs),
  cli_args: nullToUndef(z.array(z.string())),
  env: nullToUndef(Env),
  daemon: flag,
  latent: flag,
  encrypted: flag,
  broadcast: flag,
  proplet_id: nullToUndef(z.string()),
  kbs_resource_path: nullToUndef(z.string()),
  hal_storage_path: nullToUndef(z.string()),
  monitoring_profile: nullToUndef(MonitoringProfile),
  parent_results: nullToUndef(z.record(z.string(), z.unknown())),
  /** Ours: the proplet ends the run after this many seconds. Upstream proplets ignore it. */
  timeout_s: nullToUndef(z.number().positive()),
  /** Ours: the task's memory cap in MiB; the proplet's own cap still bounds it. */
  max_memory_mb: nullToUndef(z.number().int().positive()),
  /** Ours: W3C trace context of the dispatch, so the proplet's run joins its trace. */
  traceparent: nullToUndef(z.string().max(64)),
  /**
   * Ours: which start of the task this is. Our proplets echo it in results, task metrics and heartbeats, so a
   * result is fenced to its own run; upstream proplets ignore it and their results go to the current run.
   */
  run_id: nullToUndef(RunId),
  attempt: nullToUndef(z.number().int().positive()),
  /**
   * Ours: set on a start sent again for a run its proplet no longer lists (docs/ARCHITECTURE.md, "Exactly once"):
   * when the run was first started (manager's clock). A proplet with a run record answers it from the record; one
   * whose record begins after this cannot say it never received it, and fails the run instead of running it.
   */
  sent_again: nullToUndef(
    z
      .string()
      .max(64)
      .refine((v) => !Number.isNaN(Date.parse(v)), "expected an RFC3339 timestamp"),
  ),
  /**
   * Ours, with `sent_again`: when the manager sent it (its clock), so a proplet whose clock is behind (an edge device
   * without a real-time clock) compares `sent_again` with its record on its own clock.
   */
  sent_at: nullToUndef(
    z
      .string()
      .max(64)
      .refine((v) => !Number.isNaN(Date.parse(v)), "expected an RFC3339 timestamp"),
  ),
  /**
   * Ours: the sha256 of the module bytes the site's trust policy approved (docs/ARCHITECTURE.md, "Trusted code");
   * our proplets refuse other bytes. Upstream proplets ignore it.
   */
  module_digest: nullToUndef(z.string().regex(MODULE_DIGEST)),
  /** Ours: an inline module's detached signature (base64), for a proplet with a trust policy of its own. */
  module_signature: nullToUndef(z.string().max(MAX_SIGNATURE_CHARS)),
});
export type StartMsg = z.output<typeof StartMsg>;

/** manager → proplet, `control/manager/stop`. */
export const StopMsg = z.object({
  id: z.string().min(1),
  broadcast: flag,
  proplet_id: nullToUndef(z.string()),
});
export type StopMsg = z.output<typeof StopMsg>;

/**
 * How long the manager waits for an invocation's answer. A proplet bounds an invocation of a task without its own
 * `timeout_s` by this too: past it nobody waits for the answer, and a guest that loops would run on for ever.
 */
export const INVOKE_TIMEOUT_MS = 30_000;

/** manager → proplet, `control/manager/invoke`: call a deployed latent task once (upstream's shape). */
export const InvokeMsg = z.object({
  id: z.string().min(1),
  broadcast: flag,
  proplet_id: nullToUndef(z.string()),
  invocation_id: z.string().min(1).max(128),
  inputs: nullToUndef(Inputs),
  env: nullToUndef(Env),
});
export type InvokeMsg = z.output<typeof InvokeMsg>;

const MAX_INVOKE_RESULT_CHARS = 1 << 20;

/** proplet → manager, `control/proplet/invoke_results`: one invocation's answer (upstream's shape). */
export const InvokeResultMsg = z.object({
  task_id: z.string().min(1),
  invocation_id: z.string(),
  proplet_id: nullToUndef(z.string()),
  results: z.string().max(MAX_INVOKE_RESULT_CHARS, "results: at most 1 Mi characters"),
  error: z.string().nullable().optional(),
});
export type InvokeResultMsg = z.output<typeof InvokeResultMsg>;

/** proplet → manager, `control/proplet/create`. */
export const CreateMsg = z.object({
  proplet_id: z.string().min(1),
  namespace: nullToUndef(z.string()),
  metadata: nullToUndef(PropletMetadata),
});
export type CreateMsg = z.output<typeof CreateMsg>;

/** An object's null values as absent (undefined), as nullToUndef makes them, in one pass over the object. */
function nullsAbsent<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], null> } {
  const out = o as Record<string, unknown>;
  for (const k in out) if (out[k] === null) out[k] = undefined;
  return out as { [K in keyof T]: Exclude<T[K], null> };
}

/**
 * proplet → manager, `control/proplet/alive`; also the Last Will with status "offline". Every proplet sends one a
 * second or so: its fields take null as nullish() does and one transform of the whole object makes those absent,
 * instead of a preprocess pipe per field (scripts/bench/fleet.ts: heartbeats' decoding cost a tenth of serve's
 * main thread with 10,000 proplets). What it accepts and gives is what nullToUndef's fields did.
 */
export const AliveMsg = z
  .object({
    proplet_id: z.string().min(1),
    status: z.string().nullish(),
    namespace: z.string().nullish(),
    /**
     * Ours: ids of the tasks the proplet is running (and whose results it still has to deliver), so the manager can
     * settle runs a proplet lost. Bounded: runs a proplet may have, and a queue of undelivered ones.
     */
    tasks: z.array(z.string()).max(MAX_LISTED_RUNS).nullish(),
    /** Ours: the run ids of those tasks, in the same order (a start without a run id: ""). */
    runs: z.array(z.string().max(64)).max(MAX_LISTED_RUNS).nullish(),
    /** Ours: when the proplet last lost its broker and got it back, said once on the first heartbeat after. */
    offline_from: Timestamp.nullish(),
    offline_to: Timestamp.nullish(),
  })
  .transform(nullsAbsent);
export type AliveMsg = z.output<typeof AliveMsg>;

const PLAIN_HEARTBEAT_KEYS = new Set(["proplet_id", "status", "namespace", "tasks", "runs"]);

/**
 * A heartbeat as almost every one is (an id, a status, a namespace, the runs it has: strings and arrays of strings,
 * no null, no other key) checked without zod, giving what AliveMsg gives for it; undefined for anything else, which
 * AliveMsg then decides. Measured with 10,000 proplets beating (scripts/bench/fleet.ts): zod's parse of a heartbeat
 * cost serve 2.3 µs of its ~26. test/unit/core/messages-alive.test.ts holds the two to the same answers.
 */
export function plainHeartbeat(json: unknown): AliveMsg | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  for (const k in o) if (!PLAIN_HEARTBEAT_KEYS.has(k)) return undefined;
  const { proplet_id, status, namespace, tasks, runs } = o;
  if (typeof proplet_id !== "string" || proplet_id.length === 0) return undefined;
  if (
    (status !== undefined && typeof status !== "string") ||
    (namespace !== undefined && typeof namespace !== "string")
  )
    return undefined;
  if (tasks !== undefined && !stringList(tasks, Infinity)) return undefined;
  if (runs !== undefined && !stringList(runs, 64)) return undefined;
  const out: AliveMsg = { proplet_id };
  if (status !== undefined) out.status = status;
  if (namespace !== undefined) out.namespace = namespace;
  // Copies: the broker keeps the parsed payload (broker/parsed.ts), and what is decoded is the manager's own.
  if (tasks !== undefined) out.tasks = (tasks as string[]).slice();
  if (runs !== undefined) out.runs = (runs as string[]).slice();
  return out;
}

function stringList(v: unknown, maxChars: number): boolean {
  if (!Array.isArray(v) || v.length > MAX_LISTED_RUNS) return false;
  for (const s of v) if (typeof s !== "string" || s.length > maxChars) return false;
  return true;
}

/** proplet → manager, `control/proplet/results`. `results` may be any JSON (FL envelopes are objects). */
export const ResultMsg = z.object({
  task_id: z.string().min(1),
  proplet_id: nullToUndef(z.string()),
  /** Ours: the run this result ends (the start message's run_id); absent from upstream proplets. */
  run_id: nullToUndef(RunId),
  results: z.unknown(),
  error: z.string().nullable().optional(),
});
export type ResultMsg = z.output<typeof ResultMsg>;

/** One decoder for every message (a new one for each was measurable at 10,000 heartbeats a second). */
const utf8 = new TextDecoder();

/**
 * Parses a JSON payload against a schema; returns an error text instead of throwing. `parsed`: the payload's JSON
 * when it was parsed already (by the broker's ACL), so only the schema is checked.
 */
export function decode<T extends z.ZodType>(
  schema: T,
  payload: Buffer | Uint8Array | string,
  parsed?: unknown,
  /** A check of the common shape that gives the schema's answer without it (plainHeartbeat), or undefined. */
  plain?: (json: unknown) => z.output<T> | undefined,
): { ok: true; value: z.output<T> } | { ok: false; error: string } {
  let json = parsed;
  if (json === undefined) {
    try {
      json = JSON.parse(typeof payload === "string" ? payload : utf8.decode(payload));
    } catch {
      return { ok: false, error: "payload is not JSON" };
    }
    // Bounded here; JSON the broker parsed (`parsed`, broker/parsed.ts) was bounded by its ACL (core/acl.ts), so a
    // heartbeat is not walked twice.
    if (nestedDeeperThan(json, MAX_JSON_DEPTH))
      return { ok: false, error: `payload nests deeper than ${MAX_JSON_DEPTH} levels` };
  }
  // Whatever a hostile payload makes a check or a transform throw (a stack overflow on deep nesting, a date out of
  // range) is a malformed message, never an exception out of the broker's or the manager's handler.
  let r: z.ZodSafeParseResult<z.output<T>>;
  try {
    const quick = plain?.(json);
    if (quick !== undefined) return { ok: true, value: quick };
    r = schema.safeParse(json);
  } catch (e) {
    return { ok: false, error: `payload could not be read: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (!r.success) {
    const i = r.error.issues[0]!;
    return { ok: false, error: `${i.path.join(".") || "payload"}: ${i.message}` };
  }
  return { ok: true, value: r.data };
}

/** Largest metrics sample stored, as JSON: samples are kept (1,000 per proplet or task), so each is bounded. */
export const MAX_SAMPLE_CHARS = 16384;
const boundedSample = <S extends z.ZodType>(s: S) =>
  s.refine((v) => jsonSize(v) <= MAX_SAMPLE_CHARS, `sample is larger than ${MAX_SAMPLE_CHARS} characters`);

/** proplet → manager, `control/proplet/metrics`; upstream's shape, kept loose (Rust sends heap fields as 0). */
export const PropletMetricsMsg = boundedSample(
  z.looseObject({
    proplet_id: z.string().min(1),
    namespace: nullToUndef(z.string()),
    timestamp: nullToUndef(Timestamp),
    cpu_metrics: z
      .looseObject({
        user_seconds: z.number().optional(),
        system_seconds: z.number().optional(),
        percent: z.number().optional(),
      })
      .optional(),
    memory_metrics: z.looseObject({ rss_bytes: z.number().optional() }).optional(),
  }),
);
export type PropletMetricsMsg = z.output<typeof PropletMetricsMsg>;

/** proplet → manager, `control/proplet/task_metrics`. */
export const TaskMetricsMsg = boundedSample(
  z.looseObject({
    task_id: z.string().min(1),
    proplet_id: z.string().min(1),
    metrics: z.looseObject({}),
    aggregated: z.looseObject({}).nullable().optional(),
    timestamp: nullToUndef(Timestamp),
  }),
);
export type TaskMetricsMsg = z.output<typeof TaskMetricsMsg>;

/** Most text one output message carries; the proplet splits larger flushes. */
export const MAX_OUTPUT_CHUNK = 64 << 10;

/**
 * proplet → manager, `control/proplet/output` (ours; upstream has no output stream): a piece of a running task's
 * stdout or stderr, numbered per run so the reader can tell a gap from a repeat.
 */
export const OutputMsg = z.object({
  task_id: z.string().min(1),
  proplet_id: z.string().min(1),
  seq: z.number().int().nonnegative(),
  stream: z.enum(["stdout", "stderr"]),
  data: z.string().max(MAX_OUTPUT_CHUNK),
});
export type OutputMsg = z.output<typeof OutputMsg>;

/** The results of the completed tasks `t` depends on, for its start message, by the ids its workflow file used. */
export function parentResults(t: Task, get: (id: string) => Task | undefined): Record<string, unknown> {
  const parents: Record<string, unknown> = {};
  for (const d of t.depends_on ?? []) {
    const p = get(d);
    if (p?.state === TaskState.Completed && p.results !== undefined && p.results !== null) {
      parents[p.local_id ?? d] = p.results;
    }
  }
  return parents;
}

/**
 * The start message for a task's run: unicast (`broadcast:false`, `proplet_id` set), inputs as strings, and only
 * the keys that have a value. `parents` are the results of the completed tasks it depends on.
 */
export function startMessage(t: Task, parents: Record<string, unknown>): StartMsg {
  // Keys set one by one, in the order the message always had: each run builds one, and a spread of a fresh
  // object per optional key cost more than the rest of it.
  const m: StartMsg = {
    id: t.id,
    name: t.name,
    state: t.state,
    cli_args: t.cli_args ?? undefined,
    broadcast: false,
    daemon: t.daemon,
    latent: t.latent ?? false,
    encrypted: t.encrypted,
    proplet_id: t.proplet_id,
  };
  if (t.image_url) m.image_url = t.image_url;
  if (t.file) m.file = t.file;
  if (t.inputs?.length) m.inputs = t.inputs;
  if (t.env && Object.keys(t.env).length) m.env = t.env;
  if (t.kbs_resource_path) m.kbs_resource_path = t.kbs_resource_path;
  if (t.monitoring_profile) m.monitoring_profile = t.monitoring_profile;
  if (t.hal_storage_path) m.hal_storage_path = t.hal_storage_path;
  if (Object.keys(parents).length) m.parent_results = parents;
  if (t.timeout_s) m.timeout_s = t.timeout_s;
  if (t.max_memory_mb) m.max_memory_mb = t.max_memory_mb;
  if (t.run_id) {
    m.run_id = t.run_id;
    m.attempt = t.attempt ?? 1;
  }
  if (t.file && t.signature) m.module_signature = t.signature;
  return m;
}
