import type { Entity, Token } from "../core/identity.ts";
import type { Job } from "../core/job.ts";
import type { Proplet } from "../core/proplet.ts";
import type { Run } from "../core/run.ts";
import type { Task } from "../core/task.ts";
import type { TaskFind } from "../core/task-query.ts";
import type { SchemaReport } from "./schema.ts";

// Storage interfaces the manager's rooms depend on. Every backend persists every field (docs/ARCHITECTURE.md,
// "Where we differ from upstream").

export interface ListResult<T> {
  total: number;
  items: T[];
}

export interface TaskRepository {
  create(task: Task): void;
  get(id: string): Task | undefined;
  /** Writes the task; its module only with `withFile` (it is large and rarely changes). */
  update(task: Task, withFile?: boolean): void;
  delete(id: string): boolean;
  /** Newest first; with `metadata`, only tasks whose metadata holds every pair (values compared as text). */
  list(offset: number, limit: number, metadata?: Record<string, string>): ListResult<Task>;
  /** `GET /tasks`'s finding (core/task-query.ts): the tasks `taskMatches` keeps, in `compareTasks` order, no module. */
  find(f: TaskFind, offset: number, limit: number): ListResult<Task>;
  /** Tasks in the given states, for recovery and shutdown. */
  listByState(states: number[]): Task[];
  /** Tasks of a job or workflow, in the order they were created. */
  listByGroup(kind: "job" | "workflow", id: string): Task[];
  /** Ids of all jobs or workflows that have tasks. */
  groupIds(kind: "job" | "workflow"): string[];
  /** How many tasks are in each state. */
  countByState(): Record<number, number>;
  /** Tasks that have a schedule. */
  listScheduled(): Task[];
  /** Up to `limit` ids that start with `prefix`, in order. */
  idsStartingWith(prefix: string, limit: number): string[];
}

/** Runs are stored once, when they end; a task's current run is derived from the task. */
export interface RunRepository {
  create(run: Run): void;
  /**
   * Replaces the stored run with this task_id and run_id (a result that came late for a run already settled);
   * false when there is none.
   */
  update(run: Run): boolean;
  get(taskId: string, runId: string): Run | undefined;
  /** Newest first. */
  listByTask(taskId: string, offset: number, limit: number): ListResult<Run>;
}

export interface JobRepository {
  create(job: Job): void;
  get(id: string): Job | undefined;
  all(): Job[];
}

export interface PropletRepository {
  upsert(p: Proplet): void;
  get(id: string): Proplet | undefined;
  delete(id: string): boolean;
  all(): Proplet[];
}

/** Metrics samples, newest kept up to a bound per proplet or task. */
export interface MetricsRepository {
  addProplet(propletId: string, at: string, sample: unknown): void;
  addTask(taskId: string, at: string, sample: unknown): void;
  /** Newest first. */
  listProplet(propletId: string, offset: number, limit: number): ListResult<unknown>;
  listTask(taskId: string, offset: number, limit: number): ListResult<unknown>;
}

/** REST tokens; their secrets only as hashes. */
export interface TokenRepository {
  create(t: Token): void;
  /** Writes a changed token (a revocation). */
  update(t: Token): void;
  get(id: string): Token | undefined;
  /** Oldest first. */
  all(): Token[];
}

/** MQTT identities (manager, proxy, proplets); their API keys only as hashes. */
export interface EntityRepository {
  create(e: Entity): void;
  update(e: Entity): void;
  get(id: string): Entity | undefined;
  /** Oldest first. */
  all(): Entity[];
}

/**
 * Federated learning's documents, by kind: experiments, their client modules (kept apart: an experiment is
 * rewritten on every update), model versions, datasets, and a round's pending updates.
 */
export type FlKind = "experiment" | "module" | "model" | "dataset" | "update";

/**
 * Federated learning's state as JSON text per kind and id (the room parses it with its core schema). Models and
 * datasets can be megabytes: kept as written, never parsed by the backend.
 */
export interface FlRepository {
  put(kind: FlKind, id: string, doc: string): void;
  get(kind: FlKind, id: string): string | undefined;
  /** Every id of a kind, in code-point order. */
  ids(kind: FlKind): string[];
  delete(kind: FlKind, id: string): boolean;
}

export const STORAGE_KINDS = ["sqlite", "kv", "memory", "postgres"] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

export interface Storage {
  /** Which backend this is, for `GET /health`. */
  kind: StorageKind;
  /** What opening did to the store's schema (migrated from → to, the snapshot taken first); none for memory. */
  schema?: SchemaReport;
  tasks: TaskRepository;
  proplets: PropletRepository;
  runs: RunRepository;
  jobs: JobRepository;
  metrics: MetricsRepository;
  tokens: TokenRepository;
  entities: EntityRepository;
  fl: FlRepository;
  /**
   * Resolves once every write made so far is committed. Writes are grouped into one commit per turn of the
   * event loop (group commit); callers acknowledge a change to a client only after this resolves, so nothing
   * acknowledged is lost on kill -9.
   */
  durable(): Promise<void>;
  /**
   * A real, small write committed as every write is (for `/readyz`): rejects when the store cannot commit (a full
   * or read-only disk, PostgreSQL down). Nothing reads what it writes.
   */
  probe(): Promise<void>;
  /**
   * Lets go of what it keeps in memory only to be faster (caches it can read again), when serve has gone quiet
   * after a burst (src/cli/idle-release.ts). Optional: a backend without such caches has none.
   */
  release?(): void;
  /** Commits what is left and lets go; a backend with a server connection resolves once it is closed. */
  close(): void | Promise<void>;
  /**
   * Told when a commit failed and what it held is gone (a full disk): what was decided in memory from those writes
   * is to be read again from the store. Optional: a backend that cannot lose a commit this way has none.
   */
  onLostWrites?(fn: () => void): void;
}
