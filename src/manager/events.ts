// Live events for `GET /events` and the console: task state changes, run starts and ends, proplets up and down,
// metrics samples. In memory only: a subscriber sees what happens while it listens.

export type ManagerEvent =
  | {
      type: "task";
      task_id: string;
      name: string;
      state: number;
      status: string;
      proplet_id?: string;
      error?: string;
      at: string;
    }
  | {
      type: "run";
      phase: "started" | "ended";
      task_id: string;
      run_id: string;
      attempt: number;
      proplet_id?: string;
      state?: number;
      status?: string;
      error?: string;
      at: string;
    }
  | { type: "proplet"; proplet_id: string; alive: boolean; at: string }
  | { type: "metrics"; kind: "proplet" | "task"; proplet_id: string; task_id?: string; sample: unknown; at: string };

export type EventType = ManagerEvent["type"];
export const EVENT_TYPES: EventType[] = ["task", "run", "proplet", "metrics"];

export class EventHub {
  private subs = new Set<(e: ManagerEvent) => void>();

  get listeners(): number {
    return this.subs.size;
  }

  subscribe(fn: (e: ManagerEvent) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  emit(e: ManagerEvent): void {
    for (const fn of this.subs) {
      try {
        fn(e);
      } catch {
        // A broken subscriber (a closed stream) must not break the manager.
      }
    }
  }
}
