import type { SchedulerName } from "../core/scheduler.ts";
import { stateName } from "../core/states.ts";
import type { TrustGate } from "../core/trust-policy.ts";
import { tag } from "../log.ts";
import { dumpStore } from "../storage/archive.ts";
import type { Storage } from "../storage/repository.ts";
import { Broadcasts } from "./broadcast.ts";
import type { Inbound } from "./bus.ts";
import { Dispatcher, type ManagerBus } from "./dispatcher.ts";
import { ManagerEvents } from "./events.ts";
import { Federation } from "./fl.ts";
import { Groups } from "./groups.ts";
import type { Identities } from "./identities.ts";
import { Invocations } from "./invoke.ts";
import { JoinTokens } from "./join.ts";
import { Liveness } from "./liveness.ts";
import { TaskOutput } from "./output.ts";
import { PropletRegistry } from "./proplets.ts";
import { RecentEvents } from "./recent-events.ts";
import { Schedules } from "./schedules.ts";
import { Tasks } from "./tasks.ts";
import { Telemetry } from "./telemetry.ts";

// The manager's rooms, wired together once (docs/ARCHITECTURE.md, "The manager's rooms"). This file only builds
// them and runs their start-up and shutdown in order; every use case lives in its room.

export interface ManagerOptions {
  /** A proplet whose last heartbeat is older than this is not alive. */
  livelinessThresholdMs: number;
  /** A proplet silent for this long (and running nothing) is forgotten; 0 keeps them all. */
  staleRemovalMs?: number;
  /** How long an unreachable proplet's runs are kept before they are settled as lost (0: at once). */
  partitionGraceMs?: number;
  scheduler: SchedulerName;
  /** Sees every cron firing as it starts, with the time it was due (for the cron benchmark). */
  observeFiring?: (id: string, dueAt: number) => void;
  /** The largest inline module (a task's `file`) accepted, in MiB; default DEFAULT_MAX_MODULE_MB. */
  maxModuleMb?: number;
  /** The site's local proplet, if it has one: named in its archives (storage/archive.ts). */
  localPropletId?: () => string | undefined;
  /** This manager's `/fl` URL as a proplet on this host reaches it, told to round tasks. */
  flUrl?: () => string | undefined;
  /** The site's trust policy (serve --trust-policy): a task whose module it refuses is refused at creation. */
  trust?: TrustGate;
}

export class Manager {
  readonly events = new ManagerEvents();
  /** The last live events, for a console that arrives (`GET /events/recent`). */
  readonly recent = new RecentEvents(this.events.live);
  readonly proplets: PropletRegistry;
  readonly dispatcher: Dispatcher;
  readonly liveness: Liveness;
  readonly schedules: Schedules;
  readonly tasks: Tasks;
  readonly broadcasts: Broadcasts;
  readonly invocations: Invocations;
  readonly groups: Groups;
  readonly telemetry: Telemetry;
  readonly output: TaskOutput;
  readonly fl: Federation;
  readonly identities: Identities;
  readonly joins: JoinTokens;
  /** Proplet messages, by kind, to the room that handles each. */
  readonly inbound: Inbound;

  constructor(
    private store: Storage,
    bus: ManagerBus,
    identities: Identities,
    private opts: ManagerOptions,
  ) {
    this.identities = identities;
    this.joins = new JoinTokens(store, identities);
    this.proplets = new PropletRegistry(store, this.events, opts, (id) => identities.vouched(id), identities);
    identities.setClaimCheck((name, id) => this.proplets.claimedBy(name, id));
    identities.created.subscribe((e) => e.kind === "proplet" && this.proplets.rename(e.id, e.name));
    this.dispatcher = new Dispatcher(store, bus, this.proplets, this.events, opts.scheduler);
    this.liveness = new Liveness(this.proplets, this.dispatcher, opts.partitionGraceMs ?? 0);
    this.schedules = new Schedules(store, this.dispatcher, this.events, opts.observeFiring);
    this.broadcasts = new Broadcasts(store, this.dispatcher, this.proplets, this.events);
    this.invocations = new Invocations(store, this.dispatcher, bus);
    this.tasks = new Tasks(store, this.dispatcher, this.schedules, this.events, opts.maxModuleMb, opts.trust);
    this.groups = new Groups(store, this.tasks, this.dispatcher, this.events);
    this.telemetry = new Telemetry(store, this.proplets, this.events);
    this.output = new TaskOutput(store, this.events);
    this.fl = new Federation(store, this.tasks, this.proplets, this.events, {
      url: opts.flUrl,
      restartGraceMs: opts.livelinessThresholdMs,
    });
    const d = this.dispatcher;
    store.onLostWrites?.(() => {
      tag("manager").warn(
        "a commit failed and was undone (is the disk full?): what it held is read again from the store",
      );
      d.resyncRunning();
    });
    identities.labelled.subscribe(() => d.drain());
    identities.revoked.subscribe((id) => this.liveness.onRevoked(id));
    const t = this.telemetry;
    this.inbound = {
      create: (m) => this.liveness.onCreate(m),
      alive: (m) => this.liveness.onAlive(m),
      result: (m) => d.onResult(m),
      propletMetrics: (m) => t.onPropletMetrics(m),
      taskMetrics: (m) => t.onTaskMetrics(m),
      output: (m) => this.output.onOutput(m),
      flUpdate: (m, sender) => this.fl.update(m, "mqtt", sender),
      invokeResult: (m) => this.invocations.onResult(m),
    };
  }

  /**
   * Rebuilds in-memory state from storage after a start or a crash, and continues started groups; `takeover`:
   * this manager took over a site from another one (managers sharing PostgreSQL).
   */
  recover(takeover = false): void {
    this.dispatcher.recover(Date.now(), takeover);
    this.schedules.recover();
    this.groups.resume();
    this.broadcasts.recover();
    this.fl.recover();
  }

  /** The fleet at a glance (`GET /stats`, the console's overview): proplets, tasks by state, the queue. */
  stats() {
    const byState = this.store.tasks.countByState();
    const tasks: Record<string, number> = {};
    for (const [state, n] of Object.entries(byState)) tasks[stateName(Number(state))] = n;
    return {
      proplets: { alive: this.proplets.aliveCount(), total: this.store.proplets.all().length },
      tasks,
      queue_depth: this.dispatcher.queueDepth,
      experiments: this.fl.list().filter((e) => e.state === "running").length,
    };
  }

  /** Resolves once every change made so far is committed (what a reader is shown must survive a crash). */
  committed(): Promise<void> {
    return this.store.durable();
  }

  /**
   * The whole store as a portable archive (`POST /backup`): everything acknowledged so far, read in one turn of
   * the event loop, so one consistent state (storage/archive.ts).
   */
  async archive(program?: string): Promise<string[]> {
    await this.store.durable();
    return dumpStore(this.store, program, this.opts.localPropletId?.());
  }

  /** Graceful shutdown: no more firings; running tasks are stopped and marked Interrupted; all committed. */
  async shutdown(): Promise<void> {
    this.schedules.stop();
    this.invocations.close();
    await this.dispatcher.shutdown();
    this.proplets.flush();
    await this.store.durable();
  }
}
