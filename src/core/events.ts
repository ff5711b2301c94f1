import { z } from "zod";

// Live events for `GET /events`, `propeller watch` and the console: task state changes, run starts and ends,
// proplets up and down, metrics samples. The manager emits them; the CLI parses them with the same schema.

const TaskEvent = z.object({
  type: z.literal("task"),
  task_id: z.string(),
  name: z.string(),
  state: z.number().int(),
  status: z.string(),
  proplet_id: z.string().optional(),
  error: z.string().optional(),
  at: z.string(),
});

const RunEvent = z.object({
  type: z.literal("run"),
  phase: z.enum(["started", "ended"]),
  task_id: z.string(),
  run_id: z.string(),
  attempt: z.number().int(),
  proplet_id: z.string().optional(),
  state: z.number().int().optional(),
  status: z.string().optional(),
  error: z.string().optional(),
  at: z.string(),
});

const PropletEvent = z.object({
  type: z.literal("proplet"),
  proplet_id: z.string(),
  /** Its name (its identity's, for a provisioned proplet). */
  name: z.string().optional(),
  alive: z.boolean(),
  at: z.string(),
});

const MetricsEvent = z.object({
  type: z.literal("metrics"),
  kind: z.enum(["proplet", "task"]),
  proplet_id: z.string(),
  task_id: z.string().optional(),
  sample: z.unknown(),
  at: z.string(),
});

/** A federated-learning round started, took an update, or ended. */
const FlEvent = z.object({
  type: z.literal("fl"),
  experiment_id: z.string(),
  round_id: z.string(),
  /** 1-based within the experiment, of `rounds`. */
  index: z.number().int(),
  rounds: z.number().int(),
  state: z.string(),
  num_updates: z.number().int(),
  k_of_n: z.number().int(),
  model_version: z.number().int().optional(),
  metrics: z.record(z.string(), z.number()).optional(),
  error: z.string().optional(),
  at: z.string(),
});

/** Where a module was refused: a task's creation, a change of its module, its dispatch, or the proxy's chunks. */
export const TrustStep = z.enum(["create", "update", "dispatch", "proxy"]);
export type TrustStep = z.infer<typeof TrustStep>;

/** The site's trust policy refused a module (docs/ARCHITECTURE.md, "Trusted code"): the audit trail. */
const TrustEvent = z.object({
  type: z.literal("trust"),
  at_step: TrustStep,
  task_id: z.string().optional(),
  module: z.string(),
  rule: z.string(),
  scope: z.string(),
  reason: z.string(),
  at: z.string(),
});

export const ManagerEvent = z.discriminatedUnion("type", [
  TaskEvent,
  RunEvent,
  PropletEvent,
  MetricsEvent,
  FlEvent,
  TrustEvent,
]);
export type ManagerEvent = z.infer<typeof ManagerEvent>;
export type EventType = ManagerEvent["type"];
export const EVENT_TYPES: EventType[] = ["task", "run", "proplet", "metrics", "fl", "trust"];
