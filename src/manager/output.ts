import type { OutputMsg } from "../core/messages.ts";
import { TaskState } from "../core/states.ts";
import type { Task } from "../core/task.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { ManagerEvents } from "./events.ts";

const log = tag("manager");

// Running tasks' output as their proplets stream it (`GET /tasks/{id}/logs`, `propeller tasks logs --follow`).
// Kept in memory only and bounded: the last MAX_KEPT_CHARS of each task's current run, for at most MAX_TASKS tasks.
// A task's full stdout stays its result, stored as before; this is for watching it while it runs.

export interface OutputChunk {
  seq: number;
  stream: "stdout" | "stderr";
  data: string;
}

/** A follower gets chunks, then `null` when the task reaches a final state. */
export type Follower = (c: OutputChunk | null) => void;

export const MAX_KEPT_CHARS = 1 << 20;
export const MAX_TASKS = 256;

interface Kept {
  chunks: OutputChunk[];
  chars: number;
  /** Characters dropped from the front to stay bounded, and pieces that never arrived. */
  dropped: number;
  missing: number;
  next: number;
  followers: Set<Follower>;
}

export class TaskOutput {
  private kept = new Map<string, Kept>();

  constructor(
    private store: Storage,
    events: ManagerEvents,
  ) {
    // Each run starts afresh (its pieces are numbered from 0); followers stay on for a retry's output.
    events.runStarted.subscribe(({ task }) => {
      const k = this.kept.get(task.id);
      if (k) Object.assign(k, { chunks: [], chars: 0, dropped: 0, missing: 0, next: 0 });
    });
    events.taskFinal.subscribe((t) => {
      const k = this.kept.get(t.id);
      if (!k) return;
      for (const f of k.followers) f(null);
      k.followers.clear();
    });
  }

  /** A piece from a proplet: kept only if that proplet is running the task now. */
  onOutput(msg: OutputMsg): void {
    const task = this.store.tasks.get(msg.task_id);
    if (!task || task.state !== TaskState.Running || task.proplet_id !== msg.proplet_id) {
      log.debug(`output for ${msg.task_id} from ${msg.proplet_id} dropped: not its running task`);
      return;
    }
    const k = this.entry(task.id);
    if (msg.seq < k.next) return; // a repeat (QoS 1 redelivers)
    k.missing += msg.seq - k.next;
    k.next = msg.seq + 1;
    const chunk: OutputChunk = { seq: msg.seq, stream: msg.stream, data: msg.data };
    k.chunks.push(chunk);
    k.chars += chunk.data.length;
    while (k.chars > MAX_KEPT_CHARS && k.chunks.length > 1) {
      const old = k.chunks.shift()!;
      k.chars -= old.data.length;
      k.dropped += old.data.length;
    }
    for (const f of k.followers) f(chunk);
  }

  /** What is kept of a task's output. */
  read(task: Task): { chunks: OutputChunk[]; dropped_chars: number; missing_chunks: number } {
    const k = this.kept.get(task.id);
    return { chunks: k ? [...k.chunks] : [], dropped_chars: k?.dropped ?? 0, missing_chunks: k?.missing ?? 0 };
  }

  /** Follows a task from now on; the caller reads what is kept first, in the same tick. */
  follow(task: Task, f: Follower): () => void {
    const k = this.entry(task.id);
    k.followers.add(f);
    return () => k.followers.delete(f);
  }

  private entry(id: string): Kept {
    let k = this.kept.get(id);
    if (k) return k;
    k = { chunks: [], chars: 0, dropped: 0, missing: 0, next: 0, followers: new Set() };
    this.kept.set(id, k);
    // Forget the oldest tasks nobody follows.
    for (const [old, o] of this.kept) {
      if (this.kept.size <= MAX_TASKS) break;
      if (o.followers.size === 0 && old !== id) this.kept.delete(old);
    }
    return k;
  }
}
