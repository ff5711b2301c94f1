// The manager's live events (`GET /events`, Server-Sent Events, signed in by the session cookie). Pages subscribe;
// a lost connection is shown as a banner and the browser's EventSource reconnects on its own.

export interface LiveEvent {
  type: "task" | "run" | "proplet" | "metrics" | "fl";
  task_id?: string;
  proplet_id?: string;
  experiment_id?: string;
  state?: number | string;
  status?: string;
  name?: string;
  alive?: boolean;
  error?: string;
  at: string;
  [k: string]: unknown;
}

type Listener = (e: LiveEvent) => void;
const listeners = new Set<Listener>();
const statusListeners = new Set<(up: boolean) => void>();
let source: EventSource | undefined;

export function connect(): void {
  source?.close();
  source = new EventSource("/events?types=task,run,proplet,fl");
  source.onopen = () => {
    for (const fn of statusListeners) fn(true);
  };
  source.onerror = () => {
    for (const fn of statusListeners) fn(false);
  };
  for (const type of ["task", "run", "proplet", "fl"]) {
    source.addEventListener(type, (m) => {
      const e = JSON.parse((m as MessageEvent).data) as LiveEvent;
      for (const fn of listeners) fn(e);
    });
  }
}

/** Stops the live stream (signing out, or a session that ended). */
export function disconnect(): void {
  source?.close();
  source = undefined;
}

export function onLive(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn: (up: boolean) => void): () => void {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}
