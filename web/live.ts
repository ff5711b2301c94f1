// The manager's live events (`GET /events`, Server-Sent Events, signed in by the session cookie). Pages subscribe;
// a lost connection is shown as a banner and the browser's EventSource reconnects on its own. The last events are
// kept here, not in a page: the overview shows them on arrival (seeded from `GET /events/recent`) and after
// navigating away and back.
import { api } from "./api.ts";

export interface LiveEvent {
  type: "task" | "run" | "proplet" | "metrics" | "fl" | "trust";
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
const RECENT = 50;
let recent: LiveEvent[] = [];
const recentListeners = new Set<() => void>();
const keyOf = (e: LiveEvent) => JSON.stringify(e);

/** Newest first, at most RECENT, each event once (the server's and the stream's may overlap). */
function keep(events: LiveEvent[]): void {
  const seen = new Set<string>();
  recent = [...events, ...recent]
    .filter((e) => !seen.has(keyOf(e)) && seen.add(keyOf(e)))
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
    .slice(0, RECENT);
  for (const fn of recentListeners) fn();
}

/** The last events the manager kept (what happened before this page opened), merged into the list. */
export async function seedRecent(): Promise<void> {
  const r = await api<{ events: LiveEvent[] }>("GET", `/events/recent?limit=${RECENT}`);
  keep(r.events);
}

export function recentEvents(): LiveEvent[] {
  return recent;
}

export function onRecent(fn: () => void): () => void {
  recentListeners.add(fn);
  return () => recentListeners.delete(fn);
}

interface Stream {
  open(): void;
  close(): void;
}
/** Every page's own stream, so that a tab out of sight can let them go and take them back. */
const pageStreams = new Set<Stream>();

/** A page's own stream (e.g. one proplet's metrics samples), closed by the function returned. */
export function subscribe(query: string, types: string[], fn: Listener): () => void {
  let s: EventSource | undefined;
  const stream: Stream = {
    open() {
      s = new EventSource(`/events?${query}`);
      for (const type of types) {
        s.addEventListener(type, (m) => fn(JSON.parse((m as MessageEvent).data) as LiveEvent));
      }
    },
    close() {
      s?.close();
      s = undefined;
    },
  };
  if (!parked) stream.open();
  pageStreams.add(stream);
  return () => {
    stream.close();
    pageStreams.delete(stream);
  };
}

const listeners = new Set<Listener>();
const statusListeners = new Set<(up: boolean) => void>();
let source: EventSource | undefined;
/** Whether the live stream is wanted (signed in), and whether it is let go while the tab is out of sight. */
let wanted = false;
let parked = false;

/**
 * A tab out of sight for a while lets its streams go: a browser gives one host six HTTP/1.1 connections, shared by
 * every tab, and each console tab held one or two for good (a seventh tab never loaded). Shown again, the streams
 * come back and every page asks again for what it shows (a stream back is a refresh, see ui.tsx useApi).
 */
export const PARK_AFTER_MS = 5_000;
let parkTimer: ReturnType<typeof setTimeout> | undefined;
if (typeof document !== "undefined") {
  document.addEventListener("visibilitychange", () => {
    clearTimeout(parkTimer);
    if (document.hidden) {
      parkTimer = setTimeout(park, PARK_AFTER_MS);
      return;
    }
    if (!parked) return;
    parked = false;
    for (const s of pageStreams) s.open();
    if (wanted) {
      open();
      void seedRecent().catch(() => {});
    }
  });
}

function park(): void {
  parked = true;
  for (const s of pageStreams) s.close();
  if (!source) return;
  source.close();
  source = undefined;
  for (const fn of statusListeners) fn(false);
}

export function connect(): void {
  wanted = true;
  if (!parked) open();
}

function open(): void {
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
      keep([e]);
      for (const fn of listeners) fn(e);
    });
  }
}

/** Stops the live stream (signing out, or a session that ended). */
export function disconnect(): void {
  wanted = false;
  source?.close();
  source = undefined;
  recent = [];
}

export function onLive(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function onStatus(fn: (up: boolean) => void): () => void {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}
