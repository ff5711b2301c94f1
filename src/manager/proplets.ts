import { conflict, notFound } from "../core/errors.ts";
import type { AliveMsg, CreateMsg } from "../core/messages.ts";
import { nearest } from "../core/nearest.ts";
import {
  appendHeartbeat,
  isAlive,
  type Proplet,
  type PropletView,
  propletView,
  recordHeartbeat,
} from "../core/proplet.ts";
import { UNVOUCHED, type Vouched } from "../core/requirements.ts";
import type { Placeable } from "../core/scheduler.ts";
import { nowIso } from "../core/time.ts";
import type { Storage } from "../storage/repository.ts";
import type { ManagerEvents } from "./events.ts";
import { HeartbeatTimes } from "./heartbeat-times.ts";
import { type IdentityNames, PropletNames } from "./proplet-names.ts";
import { RunsOn } from "./proplet-runs.ts";

// The proplets the manager knows: registration and heartbeats, liveliness, which tasks run where (proplet-runs.ts),
// and up/down events; their names are proplet-names.ts's, their heartbeats' times heartbeat-times.ts's. A
// write-through cache in front of the repository: proplets are few and read on every dispatch.

/** How often heartbeats are written (flash wear: scripts/bench/wear.ts); a proplet found silent, at once (sweep). */
const HEARTBEAT_WRITE_MS = 10 * 60_000;

export interface RegistryOptions {
  livelinessThresholdMs: number;
  /** A proplet silent for this long (and running nothing) is forgotten; 0 keeps them all. */
  staleRemovalMs?: number;
  /**
   * How long a proplet that stopped being heard keeps its runs (unreachable) before they are settled as lost:
   * an edge link drops, and a cut-off proplet goes on working and reports when it is back. 0: settled at once.
   */
  partitionGraceMs?: number;
}

/** A proplet that may take work now, with its load and what placement may take as true of it. */
export type Candidate = Placeable & { proplet: Proplet; vouched: Vouched };

export class PropletRegistry {
  private proplets = new Map<string, Proplet>();
  /** The runs each proplet has now (proplet-runs.ts). */
  private runs = new RunsOn();
  private times = new HeartbeatTimes();
  /**
   * Proplets heard from since this manager started. Only they get work: one known from storage may look alive
   * by its last heartbeat yet not be subscribed (yet), and a start sent to it would be lost.
   */
  private heard = new Set<string>();
  /** Last alive/not-alive state told to event listeners, to report changes only. */
  private told = new Map<string, boolean>();
  /**
   * Proplets whose plain heartbeats are not stored yet. A heartbeat only appends to the history (liveness itself
   * is kept here, in memory), so heartbeats are written together every HEARTBEAT_WRITE_MS instead of costing a
   * write each: 10,000 proplets beating every second would otherwise be 10,000 writes a second. Registrations,
   * offline messages and a proplet found silent are written at once; shutdown writes what is left.
   */
  private dirty = new Set<string>();
  private lastWrite = 0;
  private readonly startedAt = Date.now();
  /** Names, unique among proplets and identities (proplet-names.ts). */
  private naming: PropletNames;

  constructor(
    private store: Storage,
    private events: ManagerEvents,
    private opts: RegistryOptions,
    /** What is vouched for of a proplet beyond its own word (identities.ts). */
    private vouch: (id: string) => Vouched = () => UNVOUCHED,
    /** Names of proplet identities: a proplet goes by its identity's name (identities.ts). */
    names?: IdentityNames,
  ) {
    this.naming = new PropletNames(this.proplets, names);
    // Those with an identity first: its name is theirs, whoever held it before.
    const stored = store.proplets.all();
    const own = (p: Proplet) => (names?.propletName(p.id) === undefined ? 1 : 0);
    for (const p of stored.sort((a, b) => own(a) - own(b))) {
      // Stored before names were unique, or before its identity was made: it takes its identity's name now, and
      // a made-up name that another proplet holds already is made unique.
      const name = this.naming.nameFor(p.id, p.name);
      if (name !== p.name) store.proplets.upsert({ ...p, name });
      this.proplets.set(p.id, { ...p, name });
      this.naming.renamed(p.id, undefined, name);
    }
  }

  /**
   * Why a new identity may not take this name or id (manager/identities.ts asks): another proplet is known by it.
   */
  claimedBy(name: string, id: string): string | undefined {
    return this.naming.claimedBy(name, id);
  }

  /** An identity was made for a proplet known already (it ran unauthenticated): it takes its identity's name. */
  rename(id: string, name: string): void {
    const p = this.proplets.get(id);
    if (p && p.name !== name) this.save({ ...p, name });
  }

  get staleRemovalMs(): number {
    return this.opts.staleRemovalMs ?? 0;
  }

  has(id: string): boolean {
    return this.proplets.has(id);
  }

  get(id: string): Proplet | undefined {
    return this.proplets.get(id);
  }

  /** A proplet by id, or by name (names are unique). */
  byIdOrName(key: string): Proplet | undefined {
    return this.naming.byIdOrName(key);
  }

  /** The id of the proplet `key` names by id or name; `key` itself when no proplet has it (the caller's 404). */
  idOf(key: string): string {
    return this.byIdOrName(key)?.id ?? key;
  }

  alive(p: Proplet, now = Date.now()): boolean {
    return isAlive(p, now, this.opts.livelinessThresholdMs, this.times.lastMs(p));
  }

  track(propletId: string, taskId: string, running: boolean): void {
    this.runs.track(propletId, taskId, running);
  }

  /** Runs beside a task's current one (concurrent cron firings), by proplet: they take slots too. */
  trackExtra(propletId: string, runId: string, running: boolean): void {
    this.runs.trackExtra(propletId, runId, running);
  }

  taskCount(propletId: string): number {
    return this.runs.count(propletId);
  }

  runningTasks(propletId: string): string[] {
    return this.runs.tasks(propletId);
  }

  /** Proplets that may take work now, with their load (a cordoned one takes none). */
  candidates(now: number): Candidate[] {
    const out: Candidate[] = [];
    for (const p of this.proplets.values()) {
      if (p.cordoned || !this.heard.has(p.id) || !this.alive(p, now)) continue;
      const capacity = p.metadata.max_tasks ?? Infinity;
      out.push({ id: p.id, proplet: p, running: this.taskCount(p.id), capacity, vouched: this.vouch(p.id) });
    }
    return out;
  }

  /** Alive proplets an operator cordoned: they would take work otherwise (for `whyWaiting`). */
  cordonedAlive(now: number): Proplet[] {
    return [...this.proplets.values()].filter((p) => p.cordoned && this.alive(p, now));
  }

  /** `POST /proplets/{id}/cordon|uncordon`: stored at once, so a manager restart keeps it. */
  async setCordoned(id: string, on: boolean): Promise<PropletView> {
    const p = this.proplets.get(id);
    if (!p) throw this.missing(id);
    if (Boolean(p.cordoned) !== on) {
      const { cordoned: _, ...rest } = p;
      this.save(on ? { ...rest, cordoned: true } : rest);
      await this.store.durable();
    }
    return this.view(id);
  }

  private save(p: Proplet, deferWrite = false, alive = this.alive(p)): void {
    this.naming.renamed(p.id, this.proplets.get(p.id)?.name, p.name);
    this.proplets.set(p.id, p);
    if (deferWrite) this.dirty.add(p.id);
    else {
      this.dirty.delete(p.id);
      this.store.proplets.upsert(p);
    }
    this.tell(p.id, alive);
  }

  private tell(id: string, alive: boolean): void {
    if (this.told.get(id) === alive) return;
    this.told.set(id, alive);
    const name = this.proplets.get(id)?.name;
    this.events.live.publish({ type: "proplet", proplet_id: id, ...(name ? { name } : {}), alive, at: nowIso() });
  }

  private ensure(id: string): Proplet {
    return this.proplets.get(id) ?? { id, name: this.naming.nameFor(id), metadata: {}, alive_history: [] };
  }

  /** Discovery: registers or refreshes the proplet, which counts as a heartbeat. */
  onCreate(msg: CreateMsg): { known: boolean; name: string; again: boolean } {
    const known = this.proplets.has(msg.proplet_id);
    const found = this.ensure(msg.proplet_id);
    // Its identity's name, whatever it announces: a proplet cannot take another's name.
    const p = {
      ...found,
      name: this.naming.identityName(found.id) ?? found.name,
      metadata: msg.metadata ?? found.metadata,
    };
    // A proplet online and heard announcing itself again: what changed (its metadata) takes effect at once and
    // reaches the disk with the next batch of heartbeats, as they do (each was written at once: 20,000 of them
    // from one proplet wrote 21 MiB in 8 s). A restart loses nothing of it: a proplet announces itself on every
    // connection.
    const again = known && found.offline === false && this.heard.has(found.id);
    if (again) this.save(recordHeartbeat(p, this.times.heard(p.id, Date.now())), true, true);
    else {
      this.save(recordHeartbeat(p, nowIso()));
      this.heard.add(p.id);
    }
    return { known, name: p.name, again };
  }

  /** A heartbeat, or the offline message (Last Will or graceful shutdown). */
  onAlive(msg: AliveMsg): { offline: boolean; back: boolean; wasDown: boolean } | undefined {
    const id = msg.proplet_id;
    const known = this.proplets.get(id);
    if (msg.status === "offline") {
      if (!known) return undefined;
      this.wentOffline(id);
      return { offline: true, back: false, wasDown: false };
    }
    const now = Date.now();
    const heard = this.heard.has(id);
    const wasDown = !heard || !known || !this.alive(known, now);
    const back = known?.offline === true;
    const at = this.times.heard(id, now);
    // Just heard: alive, whatever it was. The usual heartbeat, of a proplet online and heard since this manager
    // started, grows its history in place, written with the next batch. The array is only ever this proplet's:
    // copies made on a cordon or a rename replace the object in the map, and a store that queues the object for
    // later (PostgreSQL's journal) writes newer heartbeats of the same proplet, nothing else.
    if (known && heard && known.offline === false) {
      appendHeartbeat(known.alive_history, at);
      this.dirty.add(id);
      this.tell(id, true);
    } else {
      this.save(recordHeartbeat(known ?? this.ensure(id), at), !back && known !== undefined, true);
      this.heard.add(id);
    }
    return { offline: false, back, wasDown };
  }

  /** Offline: its Last Will, its own word, or its identity revoked. Written at once (a restart must know it). */
  wentOffline(id: string): void {
    const known = this.proplets.get(id);
    if (known) this.save({ ...known, offline: true });
  }

  /** Its last heartbeat, when it is not alive yet still has runs: they wait out the partition grace. */
  unreachableSince(id: string, now = Date.now()): string | undefined {
    const p = this.proplets.get(id);
    if (!p || this.alive(p, now) || this.taskCount(id) === 0) return undefined;
    return p.alive_history.at(-1) ?? nowIso();
  }

  /**
   * Periodic sweep: tells listeners about proplets whose heartbeats stopped, forgets stale ones, and returns the
   * proplets that went silent while tasks run on them: `unreachable` within the partition grace (their runs
   * kept), `lost` after it.
   */
  sweep(now: number): { lost: string[]; unreachable: string[]; forgotten: string[] } {
    if (now - this.lastWrite >= HEARTBEAT_WRITE_MS) {
      this.lastWrite = now;
      this.flush();
    }
    const lost: string[] = [];
    const unreachable: string[] = [];
    const forgotten: string[] = [];
    const grace = this.opts.partitionGraceMs ?? 0;
    for (const p of [...this.proplets.values()]) {
      const alive = this.alive(p, now);
      if (!alive && this.told.get(p.id)) {
        this.tell(p.id, false);
        // Its last heartbeat is what a restart must still know of it ("last seen"): written now, not in a batch.
        if (this.dirty.delete(p.id)) this.store.proplets.upsert(p);
      }
      // alive() above has cached the last heartbeat's time: no text to parse for each of thousands of proplets.
      const last = this.times.lastMs(p);
      const silentMs = last === undefined ? Infinity : now - last;
      if (!alive && this.taskCount(p.id) > 0) {
        // Silent past the liveness threshold and then the grace: its runs are given up. One not heard since this
        // manager started counts as silent since the start at most: its stored last heartbeat may be up to
        // HEARTBEAT_WRITE_MS old, and a restart must not give up the runs of a proplet that beats on.
        const since = this.heard.has(p.id) ? silentMs : Math.min(silentMs, now - this.startedAt);
        if (since > this.opts.livelinessThresholdMs + grace) lost.push(p.id);
        else unreachable.push(p.id);
      }
      const stale = this.opts.staleRemovalMs && silentMs > this.opts.staleRemovalMs;
      if (stale && this.taskCount(p.id) === 0) {
        this.forget(p.id);
        forgotten.push(p.id);
      }
    }
    return { lost, unreachable, forgotten };
  }

  /** Writes the heartbeats not stored yet. */
  flush(): void {
    for (const id of this.dirty) {
      const p = this.proplets.get(id);
      if (p) this.store.proplets.upsert(p);
    }
    this.dirty.clear();
  }

  private forget(id: string): void {
    this.naming.forget(id, this.proplets.get(id)?.name);
    this.dirty.delete(id);
    this.proplets.delete(id);
    this.runs.forget(id);
    this.times.forget(id);
    this.heard.delete(id);
    this.told.delete(id);
    this.store.proplets.delete(id);
  }

  /** `DELETE /proplets/{id}`: only a proplet that runs nothing; committed before it returns. */
  async remove(key: string): Promise<void> {
    const id = this.idOf(key);
    if (!this.proplets.has(id)) throw this.missing(key);
    const n = this.taskCount(id);
    if (n > 0) throw conflict(`proplet ${id} has ${n} active tasks`);
    this.forget(id);
    await this.store.durable();
  }

  aliveCount(): number {
    const now = Date.now();
    let n = 0;
    for (const p of this.proplets.values()) if (this.alive(p, now)) n++;
    return n;
  }

  list(offset: number, limit: number, status?: "active" | "inactive"): { total: number; items: PropletView[] } {
    const now = Date.now();
    let all = [...this.proplets.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    if (status) all = all.filter((p) => this.alive(p, now) === (status === "active"));
    return {
      total: all.length,
      items: all
        .slice(offset, offset + limit)
        .map((p) => propletView(p, this.taskCount(p.id), now, this.opts.livelinessThresholdMs)),
    };
  }

  /** The 404 for a key no proplet has, with the name or id it nearly is (a name typed by hand, `calm-falon`). */
  private missing(key: string): Error {
    const known = [...this.proplets.values()].flatMap((p) => (p.name === p.id ? [p.id] : [p.name, p.id]));
    const near = key.length <= 128 ? nearest(key, known) : undefined;
    return notFound(
      `proplet ${key} not found (no proplet has that id or name${near ? `; did you mean ${near}?` : ""})`,
    );
  }

  /** A proplet by id or name. */
  view(key: string): PropletView {
    const p = this.byIdOrName(key);
    if (!p) throw this.missing(key);
    return propletView(p, this.taskCount(p.id), Date.now(), this.opts.livelinessThresholdMs);
  }

  aliveHistory(key: string, offset: number, limit: number): { total: number; items: string[] } {
    const p = this.byIdOrName(key);
    if (!p) throw this.missing(key);
    return { total: p.alive_history.length, items: p.alive_history.slice(offset, offset + limit) };
  }
}
