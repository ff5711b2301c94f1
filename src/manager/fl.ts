import { conflict, forbidden, invalid } from "../core/errors.ts";
import { aggregate, toJson } from "../core/fl.ts";
import {
  DEFAULT_MODEL,
  type Experiment,
  type ExperimentCreate,
  type FlUpdate,
  modelUri,
  modelVersionOf,
  type Round,
  roundId,
  roundMetrics,
  roundOutcome,
} from "../core/fl-experiment.ts";
import { isTerminal } from "../core/states.ts";
import { type Task, TaskCreate } from "../core/task.ts";
import { FL_ROUND_PREFIX, isRoundTask } from "../core/task-query.ts";
import { nowIso } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { ManagerEvents } from "./events.ts";
import { current, FlExperiments } from "./fl-experiments.ts";
import { FlRegistry } from "./fl-registry.ts";
import { noSamples, participantsHeard, taskErrors } from "./fl-round-checks.ts";
import { FlUpdates } from "./fl-updates.ts";
import type { PropletRegistry } from "./proplets.ts";
import type { Tasks } from "./tasks.ts";

const log = tag("fl");

// Federated learning, built in (docs/ARCHITECTURE.md, "Federated learning"): upstream's model registry, data
// store (fl-registry.ts) and coordinator in one room; experiments are kept in fl-experiments.ts, a round's updates
// in fl-updates.ts. An experiment runs its rounds back to back: each launches one task per alive
// participant, takes one update from each (HTTP or the MQTT fallback), closes at K-of-N, at its deadline, or when
// every task ended, aggregates by the experiment's strategy, stores the next model version and starts the next
// round. Experiments, models, datasets and the updates of an open round are stored, so a restart loses none.

export interface FlOptions {
  /** This manager's `/fl` URL as a proplet on this host reaches it (known once serve listens). */
  url?: () => string | undefined;
  /**
   * How long after this manager starts its proplets may take to be heard again (the liveness threshold): a round
   * that closes within it waits for its participants before the next round judges who is alive.
   */
  restartGraceMs?: number;
}

export class Federation {
  /** Models and datasets (fl-registry.ts), which the routes read and write directly. */
  readonly registry: FlRegistry;
  private book: FlExperiments;
  private updates: FlUpdates;
  private deadlines = new Map<string, Timer>();
  /** Rounds being closed: an update or a task's end arriving meanwhile does not close them twice. */
  private closing = new Set<string>();

  constructor(
    private store: Storage,
    private tasks: Tasks,
    private proplets: PropletRegistry,
    events: ManagerEvents,
    private opts: FlOptions = {},
    private startedAt = Date.now(),
  ) {
    this.registry = new FlRegistry(store, this.propletIdOf);
    this.book = new FlExperiments(store, proplets, events);
    this.updates = new FlUpdates(store, this.registry);
    events.taskFinal.subscribe((t) => this.onTaskFinal(t));
  }

  /**
   * A proplet's id from its id or name: a known proplet's, else a proplet identity's that has not connected yet
   * (a dataset stored by the name `proplets add` gave, before the proplet first came, went under the name, and the
   * proplet, asking by its id, found none).
   */
  private propletIdOf = (key: string): string => {
    const known = this.proplets.byIdOrName(key);
    if (known) return known.id;
    const identity = this.store.entities.all().find((e) => e.kind === "proplet" && !e.revoked_at && e.name === key);
    return identity?.id ?? key;
  };

  // ---- experiments ----------------------------------------------------------------------------------------

  /** Reads what was stored and re-arms the deadlines of open rounds (a round past its deadline closes now). */
  recover(): void {
    for (const { e, open } of this.book.load()) this.arm(e, open);
  }

  list() {
    return this.book.list();
  }

  get(id: string) {
    return this.book.get(id);
  }

  async configure(input: ExperimentCreate) {
    const before = this.book.all.get(input.experiment_id);
    if (before?.state === "running") {
      throw conflict(`experiment ${input.experiment_id} is running (round ${current(before)?.round_id})`);
    }
    const base = input.round_id ?? `${input.experiment_id}-r${(before?.round_list.length ?? 0) + 1}`;
    for (let i = 1; i <= input.rounds; i++) {
      const rid = roundId(base, i, input.rounds);
      if (this.book.roundOf.has(rid)) throw conflict(`round ${rid} exists already: choose another round_id`);
    }
    if (input.k_of_n !== undefined && input.k_of_n > input.participants.length) {
      throw invalid(`k_of_n: ${input.k_of_n} is more than the ${input.participants.length} participant(s)`);
    }
    if (input.min_participants > input.participants.length) {
      throw invalid(`min_participants: ${input.min_participants} is more than the participants`);
    }
    const participants = input.participants.map((key) => {
      const p = this.proplets.byIdOrName(key);
      if (!p) throw invalid(`participants: no proplet ${key} (give proplet ids or names, see propeller proplets list)`);
      return p.id;
    });
    const version = modelVersionOf(input.model_ref);
    // Upstream's registry starts with version 0; any other version must have been stored.
    if (!this.store.fl.get("model", String(version))) {
      if (version !== 0) throw invalid(`model_ref: model version ${version} is not in the registry`);
      this.store.fl.put("model", "0", JSON.stringify(DEFAULT_MODEL));
    }
    this.registry.tensorsOf(version);
    const e: Experiment = {
      ...input,
      round_id: base,
      participants,
      state: "running",
      created_at: before?.created_at ?? nowIso(),
      round_list: before?.round_list ?? [],
    };
    delete e.error;
    delete e.ended_at;
    if (e.task_file) this.store.fl.put("module", e.experiment_id, e.task_file);
    this.book.all.set(e.experiment_id, e);
    const roundsBefore = e.round_list.length;
    try {
      const first = await this.launch(e, 1, version);
      return { experiment_id: e.experiment_id, round_id: first.round_id, status: "configured", model_version: version };
    } catch (err) {
      await this.book.undo(e, before, roundsBefore);
      throw err;
    }
  }

  /** Stops a running experiment: its open round ends `stopped`, its tasks are stopped. */
  async stop(id: string) {
    const e = this.book.mustGet(id);
    const r = current(e);
    if (e.state !== "running" || !r) throw conflict(`experiment ${id} is not running (${e.state})`);
    await this.finish(e, r, "stopped", "stopped by a user");
    return { experiment_id: id, state: e.state };
  }

  private async launch(e: Experiment, index: number, version: number): Promise<Round> {
    const now = Date.now();
    const round: Round = {
      round_id: roundId(e.round_id, index, e.rounds),
      index,
      state: "running",
      model_version: version,
      tasks: {},
      k_of_n: e.k_of_n ?? e.participants.length,
      updates: [],
      started_at: new Date(now).toISOString(),
      deadline: new Date(now + e.timeout_s * 1000).toISOString(),
    };
    e.round_list.push(round);
    this.book.roundOf.set(round.round_id, e.experiment_id);
    const alive = e.participants.filter((id) => {
      const p = this.proplets.get(id);
      return p && this.proplets.alive(p);
    });
    if (alive.length < e.min_participants) {
      const gone = e.participants.filter((id) => !alive.includes(id)).map((id) => this.proplets.get(id)?.name ?? id);
      await this.finish(
        e,
        round,
        "failed",
        `only ${alive.length} of ${e.participants.length} participants are alive (not: ${gone.join(", ")}); min_participants is ${e.min_participants}`,
      );
      return round;
    }
    const env = this.roundEnv(e, round);
    try {
      for (const proplet of alive) {
        const t = await this.tasks.create(
          TaskCreate.parse({
            name: `${FL_ROUND_PREFIX}${round.round_id}-${proplet}`,
            ...(e.task_wasm_image
              ? { image_url: e.task_wasm_image }
              : { file: e.task_file, ...(e.signature ? { signature: e.signature } : {}) }),
            proplet_id: proplet,
            env,
            timeout_s: e.timeout_s,
          }),
        );
        round.tasks[proplet] = t.id;
      }
    } catch (err) {
      // Its module refused (the trust policy: a tag moved to unsigned bytes) or its tasks not made: the round fails
      // saying why, and the experiment with it. It was left running for ever with no tasks, its id refused as
      // "running", and a round before it was said to have failed aggregation.
      for (const id of Object.values(round.tasks)) await this.tasks.delete(id).catch(() => {});
      round.tasks = {};
      await this.finish(e, round, "failed", `its tasks could not be made: ${err instanceof Error ? err.message : err}`);
      throw err;
    }
    await this.save(e, round);
    log.info(
      `experiment ${e.experiment_id}: round ${round.round_id} (${index}/${e.rounds}) launched on ${alive.length} proplet(s) from model v${version}`,
    );
    for (const id of Object.values(round.tasks)) {
      await this.tasks.start(id).catch((err) => log.warn(`round ${round.round_id}: task ${id} not started: ${err}`));
    }
    this.arm(e, round);
    return round;
  }

  /**
   * Upstream's round env, and `PROPELLER_FL_URL`: where this manager's FL services are, for a proplet whose own
   * env does not say (its MODEL_REGISTRY_URL, … come first, as a remote proplet may reach this host otherwise).
   */
  private roundEnv(e: Experiment, r: Round): Record<string, string> {
    const url = this.opts.url?.();
    return {
      ...(e.env ?? {}),
      ...(url ? { PROPELLER_FL_URL: url } : {}),
      ROUND_ID: r.round_id,
      MODEL_URI: modelUri(r.model_version),
      HYPERPARAMS: JSON.stringify(e.hyperparams),
      FL_STRATEGY: e.strategy,
    };
  }

  private arm(e: Experiment, r: Round): void {
    clearTimeout(this.deadlines.get(r.round_id));
    const ms = Math.max(0, Date.parse(r.deadline) - Date.now());
    this.deadlines.set(
      r.round_id,
      setTimeout(() => void this.settle(e, r), ms),
    );
  }

  // ---- the coordinator's routes ---------------------------------------------------------------------------

  /** `GET /fl/task`: what a round's client is to do. */
  task(roundIdArg: string, propletId?: string) {
    return this.book.task(roundIdArg, propletId);
  }

  roundStatus(id: string) {
    return this.book.roundStatus(id);
  }

  /**
   * Takes one participant's update for an open round. `sender` is who authenticated (a proplet's id), when
   * authentication is on: it must be the update's proplet.
   */
  async update(u: FlUpdate, via: "http" | "mqtt", sender?: string): Promise<{ status: "accepted" }> {
    if (sender !== undefined && sender !== u.proplet_id) {
      throw forbidden(`proplet ${sender} may not send an update for proplet ${u.proplet_id}`);
    }
    const { e, r } = this.book.round(u.round_id);
    this.updates.accept(u, r, via, this.closing.has(r.round_id));
    await this.save(e, r);
    log.info(`round ${r.round_id}: update ${r.updates.length}/${r.k_of_n} from ${u.proplet_id} (${via})`);
    void this.settle(e, r);
    return { status: "accepted" };
  }

  private onTaskFinal(t: Task): void {
    if (!isRoundTask(t) || !isTerminal(t.state)) return;
    for (const e of this.book.all.values()) {
      const r = current(e);
      if (r && Object.values(r.tasks).includes(t.id)) void this.settle(e, r);
    }
  }

  /** Closes the round if it is done (K-of-N, its deadline, or every task ended). */
  private async settle(e: Experiment, r: Round): Promise<void> {
    if (r.state !== "running" || this.closing.has(r.round_id)) return;
    // Updates still to come: from participants that sent none and whose task has not ended.
    const left = Object.entries(r.tasks).filter(([proplet, id]) => {
      const t = this.store.tasks.get(id);
      return t && !isTerminal(t.state) && !r.updates.some((u) => u.proplet_id === proplet);
    }).length;
    const outcome = roundOutcome(r, e.min_participants, Date.now(), left);
    if (!outcome.done) return;
    if (outcome.error)
      return this.finish(e, r, "failed", `${outcome.error}${taskErrors(r, this.store, this.proplets)}`);
    const empty = noSamples(r);
    if (empty) return this.finish(e, r, "failed", empty);
    this.closing.add(r.round_id);
    try {
      const updates = this.updates.weighted(r);
      const started = performance.now();
      const next = aggregate(e.strategy, updates, e.trim);
      const version = (this.registry.modelVersions().at(-1) ?? 0) + 1;
      this.store.fl.put(
        "model",
        String(version),
        JSON.stringify(toJson(next, this.registry.tensorsOf(r.model_version).json)),
      );
      r.new_model_version = version;
      r.metrics = roundMetrics(r.updates);
      log.info(
        `round ${r.round_id}: ${updates.length} update(s) aggregated (${e.strategy}, ${(performance.now() - started).toFixed(1)} ms) → model v${version}`,
      );
      const last = r.index >= e.rounds;
      await this.finish(e, r, "completed");
      if (!last && e.state === "running")
        await participantsHeard(e, this.proplets, this.startedAt + (this.opts.restartGraceMs ?? 0));
      // A next round that cannot start fails itself, saying why (launch): this one completed.
      if (!last && e.state === "running") await this.launch(e, r.index + 1, version).catch(() => {});
    } catch (err) {
      await this.finish(e, r, "failed", `aggregation failed: ${err instanceof Error ? err.message : err}`);
    } finally {
      this.closing.delete(r.round_id);
    }
  }

  /** Ends a round; a round that did not complete, or the last one, ends the experiment too. */
  private async finish(e: Experiment, r: Round, state: Round["state"], error?: string): Promise<void> {
    clearTimeout(this.deadlines.get(r.round_id));
    this.deadlines.delete(r.round_id);
    r.state = state;
    r.ended_at = nowIso();
    if (error) r.error = error;
    this.updates.forget(r);
    if (state !== "completed" || r.index >= e.rounds) {
      e.state = state;
      e.ended_at = r.ended_at;
      if (error) e.error = `round ${r.round_id}: ${error}`;
    }
    if (state !== "completed") log.warn(`experiment ${e.experiment_id}: round ${r.round_id} ${state}: ${error}`);
    await this.save(e, r);
    // Tasks still running for a closed round would only send updates that are refused.
    for (const id of Object.values(r.tasks)) {
      const t = this.store.tasks.get(id);
      if (t && !isTerminal(t.state)) await this.tasks.stop(id, `round ${r.round_id} ended ${state}`).catch(() => {});
    }
  }

  private save(e: Experiment, r: Round): Promise<void> {
    return this.book.save(e, r);
  }
}
