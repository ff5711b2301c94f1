import { z } from "zod";
import type { ManagerEvent } from "./events.ts";
import { STRATEGIES, UpdateBody } from "./fl.ts";
import { jsonSize } from "./json.ts";
import { typoKey } from "./nearest.ts";
import { ClientEnv, Env, Signature } from "./task.ts";

// Federated learning's documents (issue 13): what a client sends (experiments, updates, models, datasets) and
// what the coordinator keeps (an experiment with its rounds). Upstream's keys, with our additions named where
// they are declared. Pure.

/** Ids that end up in MQTT topics and task names: no `/`, `+` or `#`, bounded. */
export const Id = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, "1 to 128 letters, digits or _.:-, starting with a letter or digit");

type FlEvent = Extract<ManagerEvent, { type: "fl" }>;

export const DEFAULT_MODEL_REF = "fl/models/global_model_v0";
/** Upstream's registry makes this version 0 when there is none. */
export const DEFAULT_MODEL = { w: [0, 0, 0], b: 0 };
/** A model or dataset this small also goes to the module in an env var (`MODEL_DATA`, `DATASET_DATA`). */
export const MAX_ENV_DOC_BYTES = 64 << 10;
export const MAX_ROUNDS = 1000;

const ExperimentFields = z.object({
  experiment_id: Id,
  /** The first round's id; with `rounds` > 1 the rounds are `{round_id}-1`, `{round_id}-2`, … */
  round_id: Id.optional(),
  // Upstream read any reference without a number as version 0: `http://evil/x` was stored as given and v0 used.
  model_ref: z
    .string()
    .max(256)
    .refine((r) => /\d$/.test(r), "model_ref names no model version: give fl/models/global_model_vN or N")
    .default(DEFAULT_MODEL_REF),
  participants: z.array(z.string().min(1).max(128)).min(1, "name at least one proplet").max(1000),
  hyperparams: z.record(z.string(), z.unknown()).default({}),
  /** Updates that complete a round; default: every participant. */
  k_of_n: z.number().int().min(1).optional(),
  timeout_s: z.number().int().min(1).max(86_400).default(60),
  task_wasm_image: z.string().min(1).max(512).optional(),
  /** Ours: the module inline (base64), instead of an image. */
  task_file: z.string().min(1).optional(),
  /** Ours: rounds run back to back, each from the model the last one made. */
  rounds: z.number().int().min(1).max(MAX_ROUNDS).default(1),
  strategy: z.enum(STRATEGIES).default("fedavg"),
  /** For `trimmed_mean`: the share of highest and of lowest values dropped per coordinate. */
  trim: z.number().min(0).max(0.49).optional(),
  /** Ours: a round that times out with fewer updates than this fails. */
  min_participants: z.number().int().min(1).default(1),
  /** Ours: extra env for every round's task. */
  env: ClientEnv.optional(),
  /**
   * Ours: `task_file`'s detached signature (base64), for a site whose trust policy requires one: it goes with every
   * round's task, as a task's `signature` does (without it an inline FL module could never be accepted there).
   */
  signature: Signature.min(1).optional(),
});

/** A key of an experiment body that nearly names a field (`stratgy`, `round`): its error (core/nearest.ts). */
export const experimentTypo = (data: unknown): string | undefined => typoKey(data, Object.keys(ExperimentFields.shape));

export const ExperimentCreate = ExperimentFields.refine((e) => !!e.task_wasm_image !== !!e.task_file, {
  message: "give the module as task_wasm_image (an image reference) or task_file (base64), one of them",
  path: ["task_wasm_image"],
})
  .refine((e) => new Set(e.participants).size === e.participants.length, {
    message: "a proplet is named twice",
    path: ["participants"],
  })
  .refine((e) => !e.signature || !!e.task_file, {
    message: "signature signs task_file, an inline module: an image's signatures are found in its registry",
    path: ["signature"],
  });
export type ExperimentCreate = z.infer<typeof ExperimentCreate>;

export const RoundState = z.enum(["running", "completed", "failed", "stopped"]);

export const Round = z.object({
  round_id: z.string(),
  /** 1-based, within the experiment. */
  index: z.number().int(),
  state: RoundState,
  /** The model version the round trains from, and the one it made. */
  model_version: z.number().int(),
  new_model_version: z.number().int().optional(),
  /** The alive participants a task was launched for, and its task id. */
  tasks: z.record(z.string(), z.string()),
  k_of_n: z.number().int(),
  updates: z.array(
    z.object({
      proplet_id: z.string(),
      num_samples: z.number(),
      metrics: z.record(z.string(), z.unknown()),
      received_at: z.string(),
      via: z.enum(["http", "mqtt"]),
    }),
  ),
  /** Numeric client metrics averaged, weighted by samples (loss, accuracy, …). */
  metrics: z.record(z.string(), z.number()).optional(),
  started_at: z.string(),
  deadline: z.string(),
  ended_at: z.string().optional(),
  error: z.string().optional(),
});
export type Round = z.infer<typeof Round>;

export const Experiment = z.object({
  experiment_id: z.string(),
  round_id: z.string(),
  model_ref: z.string(),
  /** Proplet ids, resolved from the ids or names given. */
  participants: z.array(z.string()),
  hyperparams: z.record(z.string(), z.unknown()),
  k_of_n: z.number().int().optional(),
  timeout_s: z.number().int(),
  task_wasm_image: z.string().optional(),
  task_file: z.string().optional(),
  /** task_file's detached signature, given to every round's task. */
  signature: z.string().optional(),
  rounds: z.number().int(),
  strategy: z.enum(STRATEGIES),
  trim: z.number().optional(),
  min_participants: z.number().int(),
  env: Env.optional(),
  state: RoundState,
  error: z.string().optional(),
  created_at: z.string(),
  ended_at: z.string().optional(),
  round_list: z.array(Round),
});
export type Experiment = z.infer<typeof Experiment>;

/** The largest `metrics` an FL update may carry, as JSON. */
export const MAX_METRICS_CHARS = 16384;

/** Upstream's update message (HTTP body, CBOR, or the MQTT fallback); `received_at` from a client is ignored. */
export const FlUpdate = z.object({
  round_id: Id,
  proplet_id: z.string().min(1).max(128),
  base_model_uri: z.string().max(512).optional(),
  num_samples: z.number().nonnegative().max(1e12).default(0),
  // A few figures (loss, accuracy): kept with the round and shown to viewers, so bounded (60 MiB of them was
  // accepted, stored and sent whole in every listing of the experiments).
  metrics: z
    .record(z.string(), z.unknown())
    .refine((m) => jsonSize(m) <= MAX_METRICS_CHARS, `at most ${MAX_METRICS_CHARS} characters as JSON`)
    .nullish(),
  update: z.record(z.string(), z.unknown()),
});
export type FlUpdate = z.infer<typeof FlUpdate>;

/** Keys of a model or update that are about it, not tensors of it (upstream's v0 model carries `version`). */
export const MODEL_META_KEYS = new Set(["version"]);

/** An update's or model's tensors without its meta keys, checked as `UpdateBody`. */
export function tensorPart(doc: Record<string, unknown>): z.ZodSafeParseResult<UpdateBody> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) if (!MODEL_META_KEYS.has(k)) out[k] = v;
  return UpdateBody.safeParse(out);
}

/** `POST /fl/models`: upstream's `{version, model}`. */
export const ModelPost = z.object({
  version: z.number().int().min(0).max(1e9),
  model: z.record(z.string(), z.unknown()),
});

/** `POST /fl/datasets/{id}`: upstream's body; `data` is whatever the client module reads. */
export const DatasetPost = z.looseObject({
  schema: z.string().max(128).optional(),
  data: z.array(z.unknown()),
});

/** Upstream's rule for a model reference: `…/global_model_vN` → N, else its trailing digits, else 0. */
export function modelVersionOf(ref: string): number {
  const last = ref.split("/").pop() ?? "";
  const m = /^global_model_v(\d+)$/.exec(last) ?? /(\d+)$/.exec(last);
  return m ? Number(m[1]) : 0;
}

export const modelUri = (version: number) => `fl/models/global_model_v${version}`;

/** A round's id: the experiment's `round_id` alone for a single round (upstream's one round per call). */
export function roundId(base: string, index: number, rounds: number): string {
  return rounds === 1 ? base : `${base}-${index}`;
}

/** Numeric metrics averaged over the updates, weighted by sample count (equal weights when none is reported). */
export function roundMetrics(updates: Round["updates"]): Record<string, number> {
  const total = updates.reduce((s, u) => s + u.num_samples, 0);
  const sums = new Map<string, { v: number; w: number }>();
  for (const u of updates) {
    const w = total > 0 ? u.num_samples : 1;
    for (const [k, v] of Object.entries(u.metrics)) {
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      const s = sums.get(k) ?? { v: 0, w: 0 };
      sums.set(k, { v: s.v + v * w, w: s.w + w });
    }
  }
  const out: Record<string, number> = {};
  for (const [k, s] of sums) if (s.w > 0) out[k] = +(s.v / s.w).toFixed(6);
  return out;
}

/**
 * Whether an open round is done: at K-of-N, or at its deadline with at least `min` updates (else it fails and
 * says why), or when every task it launched has ended and no more updates can come.
 */
export function roundOutcome(
  r: Pick<Round, "updates" | "k_of_n" | "deadline" | "tasks">,
  min: number,
  now: number,
  tasksLeft: number,
): { done: false } | { done: true; error?: string } {
  const n = r.updates.length;
  if (n >= r.k_of_n) return { done: true };
  const timedOut = now >= Date.parse(r.deadline);
  if (!timedOut && tasksLeft > 0) return { done: false };
  const why = timedOut ? "the round timed out" : "every task of the round ended";
  if (n >= min) return { done: true };
  return { done: true, error: `${why} with ${n} update(s) of ${r.k_of_n} needed; min_participants is ${min}` };
}

/** What a caller sees of an experiment: the module's bytes left out. */
export function experimentView(e: Experiment): Omit<Experiment, "task_file"> & { task_file?: string } {
  const { task_file, ...rest } = e;
  return task_file ? { ...rest, task_file: `(${Math.round((task_file.length * 3) / 4)} bytes)` } : rest;
}

/** A round as a live event (`GET /events`, `fl watch`, `fl configure --wait`). */
export function roundEvent(e: Pick<Experiment, "experiment_id" | "rounds">, r: Round, at: string): FlEvent {
  return {
    type: "fl",
    experiment_id: e.experiment_id,
    round_id: r.round_id,
    index: r.index,
    rounds: e.rounds,
    state: r.state,
    num_updates: r.updates.length,
    k_of_n: r.k_of_n,
    ...(r.new_model_version !== undefined ? { model_version: r.new_model_version } : {}),
    ...(r.metrics ? { metrics: r.metrics } : {}),
    ...(r.error ? { error: r.error } : {}),
    at,
  };
}
