import { z } from "zod";
import { jsonSize } from "./json.ts";

/** Largest proplet metadata stored, as JSON: what a proplet announces is kept, so it is bounded. */
export const MAX_METADATA_CHARS = 8192;
/** Bounds on what a proplet may announce: a huge interval would keep a dead proplet "alive" and holding tasks. */
export const MAX_TASKS_ANNOUNCED = 10_000;
export const MAX_LIVELINESS_INTERVAL_S = 3600;

const short = z.string().max(256);

// Discovery metadata, upstream keys. `total_memory_bytes` is accepted as number or numeric string (upstream's
// Go helper dropped numbers: we don't).
export const PropletMetadata = z
  .looseObject({
    description: z.string().max(1024).optional(),
    tags: z.array(short).max(64).optional(),
    location: short.optional(),
    ip: short.optional(),
    environment: short.optional(),
    os: short.optional(),
    hostname: short.optional(),
    cpu_arch: short.optional(),
    total_memory_bytes: z.union([z.number(), z.string().regex(/^\d+$/).transform(Number)]).optional(),
    proplet_version: short.optional(),
    wasm_runtime: short.optional(),
    /** Ours: the TEE the proplet runs in (`tdx`, `sev`, `sev-snp`, `sgx`) or `none`. */
    tee: short.optional(),
    /** Ours: how many tasks the proplet runs at once. Absent (upstream proplets): no limit. */
    max_tasks: z.number().int().positive().max(MAX_TASKS_ANNOUNCED).optional(),
    /** Ours: seconds between its heartbeats, so a slow-beating proplet is not declared dead by a tighter threshold. */
    liveliness_interval_s: z.number().positive().max(MAX_LIVELINESS_INTERVAL_S).optional(),
    /** Ours: it echoes run ids, so it may run two runs of one task at once (upstream's proplets do not). */
    run_ids: z.boolean().optional(),
    /**
     * Ours: it keeps a record of the runs it received and finished that survives its restart, and answers a start
     * sent again for one of them from it (its result again, or a failed one) instead of running the guest twice.
     */
    run_record: z.boolean().optional(),
  })
  .refine((m) => jsonSize(m) <= MAX_METADATA_CHARS, `metadata is larger than ${MAX_METADATA_CHARS} characters`);
export type PropletMetadata = z.infer<typeof PropletMetadata>;

/** Heartbeat history kept per proplet (upstream keeps 10). */
export const ALIVE_HISTORY = 10;

/** The stored proplet. Its task count is not stored: it is derived from the tasks running on it. */
export const Proplet = z.object({
  id: z.string(),
  name: z.string(),
  metadata: PropletMetadata,
  /** RFC3339 heartbeats, newest last. */
  alive_history: z.array(z.string()),
  /** Set by the Last Will or a graceful offline message; cleared by the next heartbeat. */
  offline: z.boolean().optional(),
  /** Cordoned by an operator: no new work is placed on it; what runs there runs on. Stored: survives restarts. */
  cordoned: z.boolean().optional(),
});
export type Proplet = z.infer<typeof Proplet>;

/** What the API shows of a proplet. */
export interface PropletView {
  id: string;
  name: string;
  task_count: number;
  alive: boolean;
  last_alive_at?: string;
  /** Its last heartbeat, when it is not alive but its runs are kept (the partition grace). */
  unreachable_since?: string;
  /** No new work is placed on it (`propeller proplets cordon`). */
  cordoned: boolean;
  metadata: PropletMetadata;
}

export function lastAlive(p: Proplet): string | undefined {
  return p.alive_history[p.alive_history.length - 1];
}

/**
 * Alive = a heartbeat within the threshold and no offline message since (upstream ignored the Last Will). The
 * threshold is at least three of the proplet's own heartbeat intervals when it announced them.
 */
/** `lastMs`: the last heartbeat as a number, when the caller has it parsed already (a hot path). */
export function isAlive(p: Proplet, nowMs: number, thresholdMs: number, lastMs?: number): boolean {
  const last = lastAlive(p);
  const own = (p.metadata.liveliness_interval_s ?? 0) * 3000;
  if (p.offline || last === undefined) return false;
  return nowMs - (lastMs ?? Date.parse(last)) <= Math.max(thresholdMs, own);
}

export function propletView(p: Proplet, taskCount: number, nowMs: number, thresholdMs: number): PropletView {
  const last = lastAlive(p);
  const alive = isAlive(p, nowMs, thresholdMs);
  return {
    id: p.id,
    name: p.name,
    task_count: taskCount,
    alive,
    ...(last ? { last_alive_at: last } : {}),
    // Not heard from while its runs are kept for the partition grace: cut off, perhaps still working.
    ...(!alive && taskCount > 0 && last ? { unreachable_since: last } : {}),
    cordoned: p.cordoned === true,
    metadata: p.metadata,
  };
}

/**
 * A heartbeat appended to a history in place, the oldest dropped past ALIVE_HISTORY: for the usual heartbeat of a
 * proplet the manager holds already (manager/proplets.ts), where a new proplet object and array every second for
 * each of 10,000 proplets cost serve more than a tenth of its CPU per heartbeat (scripts/bench/fleet.ts).
 */
export function appendHeartbeat(history: string[], at: string): void {
  if (history.length >= ALIVE_HISTORY) history.splice(0, history.length - ALIVE_HISTORY + 1);
  history.push(at);
}

export function recordHeartbeat(p: Proplet, at: string): Proplet {
  // One new array, not two: this runs for every heartbeat of every proplet.
  const h = p.alive_history;
  const history = h.length < ALIVE_HISTORY ? h.slice() : h.slice(h.length - ALIVE_HISTORY + 1);
  history.push(at);
  return { ...p, alive_history: history, offline: false };
}

const ADJECTIVES = [
  "amber",
  "brisk",
  "calm",
  "deft",
  "eager",
  "fleet",
  "gentle",
  "hardy",
  "keen",
  "lucid",
  "nimble",
  "quiet",
  "rapid",
  "steady",
  "sunny",
  "swift",
];
const NOUNS = [
  "otter",
  "falcon",
  "heron",
  "lynx",
  "marten",
  "osprey",
  "panda",
  "raven",
  "sparrow",
  "tern",
  "wren",
  "badger",
  "beaver",
  "crane",
  "gecko",
  "ibis",
];

/** A readable name derived from the id, so the same proplet keeps its name across restarts. */
export function propletName(id: string): string {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${ADJECTIVES[h % ADJECTIVES.length]}-${NOUNS[(h >>> 8) % NOUNS.length]}`;
}
