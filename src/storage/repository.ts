import type { Proplet } from "../core/proplet.ts";
import type { Task } from "../core/task.ts";

// Storage interfaces the manager's service depends on. Every backend persists every field (DESIGN §4.4).

export interface ListResult<T> {
  total: number;
  items: T[];
}

export interface TaskRepository {
  create(task: Task): void;
  get(id: string): Task | undefined;
  update(task: Task): void;
  delete(id: string): boolean;
  /** Newest first. */
  list(offset: number, limit: number): ListResult<Task>;
  /** Tasks in the given states, for recovery and shutdown. */
  listByState(states: number[]): Task[];
}

export interface PropletRepository {
  upsert(p: Proplet): void;
  get(id: string): Proplet | undefined;
  delete(id: string): boolean;
  all(): Proplet[];
}

export interface Storage {
  tasks: TaskRepository;
  proplets: PropletRepository;
  /**
   * Resolves once every write made so far is committed. Writes are grouped into one commit per turn of the
   * event loop (group commit); callers acknowledge a change to a client only after this resolves, so nothing
   * acknowledged is lost on kill -9.
   */
  durable(): Promise<void>;
  close(): void;
}
