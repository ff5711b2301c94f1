import type { Entity, Token } from "../core/identity.ts";
import type { Job } from "../core/job.ts";
import type { Proplet } from "../core/proplet.ts";
import type { Run } from "../core/run.ts";
import type { Task } from "../core/task.ts";
import type { FlKind } from "./repository.ts";

// What the in-memory repositories changed, in order, for a backend that keeps its durable copy elsewhere
// (PostgreSQL): the memory store answers every read; the journal writes each change through and says when it is
// committed.

export type Change =
  | { kind: "task"; task: Task; withFile: boolean }
  | { kind: "task-delete"; id: string }
  | { kind: "run"; run: Run }
  | { kind: "run-update"; run: Run }
  | { kind: "job"; job: Job }
  | { kind: "proplet"; proplet: Proplet }
  | { kind: "proplet-delete"; id: string }
  | {
      kind: "metric";
      owner_kind: "proplet" | "task";
      owner: string;
      at: string;
      sample: unknown;
      /** When the owner's samples are at the retention bound: the oldest one kept; older ones are gone. */
      keep_from?: string;
    }
  | { kind: "token"; token: Token }
  | { kind: "entity"; entity: Entity }
  | { kind: "fl"; fl_kind: FlKind; id: string; doc: string }
  | { kind: "fl-delete"; fl_kind: FlKind; id: string };

export interface Journal {
  record(c: Change): void;
  /** Resolves once every change recorded so far is committed; rejects if a commit failed. */
  durable(): Promise<void>;
}
