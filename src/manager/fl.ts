import { conflict, forbidden, invalid, notFound } from "../core/errors.ts";
import { aggregate, checkShape, decodeUpdate, type Tensors, toJson, type WeightedUpdate } from "../core/fl.ts";
import {
  DEFAULT_MODEL,
  type Experiment,
  type ExperimentCreate,
  Experiment as ExperimentDoc,
  experimentView,
  type FlUpdate,
  modelUri,
  modelVersionOf,
  type Round,
  roundId,
  roundMetrics,
  roundOutcome,
  tensorPart,
} from "../core/fl-experiment.ts";
import { isTerminal } from "../core/states.ts";
import { type Task, TaskCreate } from "../core/task.ts";
import { nowIso } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import { readDoc } from "../storage/sqlite/doc.ts";
import type { ManagerEvents } from "./events.ts";
import type { PropletRegistry } from "./proplets.ts";
import type { Tasks } from "./tasks.ts";

const log = tag("fl");

// Federated learning, built in (docs/ARCHITECTURE.md, "Federated learning"): upstream's model registry, data
// store and coordinator in one room. An experiment runs its rounds back to back: each launches one task per alive
// participant, takes one update from each (HTTP or the MQTT fallback), closes at K-of-N, at its deadline, or when
// every task ended, aggregates by the experiment's strategy, stores the next model version and starts the next
// round. Experiments, models, datasets and the updates of an open round are stored, so a restart loses none.

export interface FlOptions {
  /** This manager's `/fl` URL as a proplet on this host reaches it (known once serve listens). */
  url?: () => string | undefined;
}

/** An update's tensors as the experiment's base model names them, or why they cannot count. */
type Decoded = { tensors: Tensors } | { error: string };

export class Federation {
  private experiments = new Map<string, Experiment>();
  /** Round id → experiment id, for every round ever run. */
  private roundOf = new Map<string, string>();
  private deadlines = new Map<string, Timer>();
  /** Rounds being closed: an update or a task's end arriving meanwhile does not close them twice. */
  private closing = new Set<string>();
  /** Updates of open rounds as decoded when they came (after a restart, decoded again from storage). */
  private received = new Map<string, Map<string, Tensors>>();
  /** A stored model's tensors by version, decoded once (a round checks every update's shape against it). */
  private modelCache = new Map<number, { json: Record<string, unknown>; tensors: Tensors }>();

  constructor(
    private store: Storage,
    private tasks: Tasks,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
    private opts: FlOptions = {},
  ) {
    events.taskFinal.subscribe((t) => this.onTaskFinal(t));
  }

  // ---- model registry -------------------------------------------------------------------------------------

  modelVersions(): number[] {
    return this.store.fl
      .ids("model")
      .map(Number)
      .sort((a, b) => a - b);
  }

  model(version: number): Record<string, unknown> {
    const text = this.store.fl.get("model", String(version));
    if (text === undefined) throw notFound(`model version ${version} not found`);
    return JSON.parse(text);
  }

  /** A model must be tensors (numbers or arrays of numbers) to be averaged; checked before it is stored. */
  async putModel(version: number, model: Record<string, unknown>): Promise<{ version: number; status: "stored" }> {
    const t = this.decodeModel(model);
    if (typeof t === "string") throw invalid(`model: ${t}`);
    this.store.fl.put("model", String(version), JSON.stringify(model));
    this.modelCache.delete(version);
    await this.store.durable();
    return { version, status: "stored" };
  }

  private decodeModel(model: Record<string, unknown>): Tensors | string {
    const parsed = tensorPart(model);
    if (!parsed.success) return parsed.error.issues[0]?.message ?? "not tensors";
    return decodeUpdate(parsed.data);
  }

  private tensorsOf(version: number): { json: Record<string, unknown>; tensors: Tensors } {
    const hit = this.modelCache.get(version);
    if (hit) return hit;
    const json = this.model(version);
    const tensors = this.decodeModel(json);
    if (typeof tensors === "string") throw invalid(`model version ${version}: ${tensors}`);
    const entry = { json, tensors };
    this.modelCache.clear(); // one round's base at a time is what is read
    this.modelCache.set(version, entry);
    return entry;
  }

  // ---- data store -----------------------------------------------------------------------------------------

  datasets(): { clients: string[]; count: number } {
    const clients = this.store.fl.ids("dataset");
    return { clients, count: clients.length };
  }

  dataset(id: string): unknown {
    const text = this.store.fl.get("dataset", id);
    if (text === undefined) throw notFound(`no dataset for ${id}`);
    return JSON.parse(text);
  }

  async putDataset(id: string, body: { schema?: string; data: unknown[] }) {
    const doc = { ...body, schema: body.schema ?? "fl-demo-dataset-v1", proplet_id: id, size: body.data.length };
    this.store.fl.put("dataset", id, JSON.stringify(doc));
    await this.store.durable();
    return { proplet_id: id, size: doc.size, status: "stored" as const };
  }

  // ---- experiments ----------------------------------------------------------------------------------------

  /** Reads what was stored and re-arms the deadlines of open rounds (a round past its deadline closes now). */
  recover(): void {
    for (const id of this.store.fl.ids("experiment")) {
      const e = readDoc(ExperimentDoc, this.store.fl.get("experiment", id)!, `experiment ${id}`);
      if (!e.task_wasm_image && !e.task_file) e.task_file = this.store.fl.get("module", id);
      this.experiments.set(id, e);
      for (const r of e.round_list) this.roundOf.set(r.round_id, id);
      const open = e.round_list.find((r) => r.state === "running");
      if (open) this.arm(e, open);
    }
  }

  list() {
    return [...this.experiments.values()].map((e) => this.view(e));
  }

  get(id: string) {
    return this.view(this.mustGet(id));
  }

  /** Participants are kept by id; the view names them as their proplets are named (their identities'). */
  private view(e: Experiment) {
    return { ...experimentView(e), participant_names: e.participants.map((id) => this.proplets.get(id)?.name ?? id) };
  }

  private mustGet(id: string): Experiment {
    const e = this.experiments.get(id);
    if (!e) throw notFound(`experiment ${id} not found`);
    return e;
  }

  async configure(input: ExperimentCreate) {
    const before = this.experiments.get(input.experiment_id);
    if (before?.state === "running") {
      throw conflict(`experiment ${input.experiment_id} is running (round ${current(before)?.round_id})`);
    }
    const base = input.round_id ?? `${input.experiment_id}-r${(before?.round_list.length ?? 0) + 1}`;
    for (let i = 1; i <= input.rounds; i++) {
      const rid = roundId(base, i, input.rounds);
      if (this.roundOf.has(rid)) throw conflict(`round ${rid} exists already: choose another round_id`);
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
    this.tensorsOf(version);
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
    this.experiments.set(e.experiment_id, e);
    const first = await this.launch(e, 1, version);
    return { experiment_id: e.experiment_id, round_id: first.round_id, status: "configured", model_version: version };
  }

  /** Stops a running experiment: its open round ends `stopped`, its tasks are stopped. */
  async stop(id: string) {
    const e = this.mustGet(id);
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
    this.roundOf.set(round.round_id, e.experiment_id);
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
    for (const proplet of alive) {
      const t = await this.tasks.create(
        TaskCreate.parse({
          name: `fl-round-${round.round_id}-${proplet}`,
          ...(e.task_wasm_image ? { image_url: e.task_wasm_image } : { file: e.task_file }),
          proplet_id: proplet,
          env,
          timeout_s: e.timeout_s,
        }),
      );
      round.tasks[proplet] = t.id;
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
    const { e, r } = this.round(roundIdArg);
    return {
      task: {
        round_id: r.round_id,
        model_ref: modelUri(r.model_version),
        config: { proplet_id: propletId ?? "" },
        hyperparams: e.hyperparams,
      },
    };
  }

  roundStatus(id: string) {
    const { r } = this.round(id);
    return {
      status: {
        round_id: r.round_id,
        completed: r.state !== "running",
        state: r.state,
        num_updates: r.updates.length,
        k_of_n: r.k_of_n,
        ...(r.new_model_version !== undefined ? { model_version: r.new_model_version } : {}),
        ...(r.error ? { error: r.error } : {}),
      },
    };
  }

  private round(id: string): { e: Experiment; r: Round } {
    const eid = this.roundOf.get(id);
    const e = eid ? this.experiments.get(eid) : undefined;
    const r = e?.round_list.find((x) => x.round_id === id);
    if (!e || !r) throw notFound(`round ${id} not found`);
    return { e, r };
  }

  /**
   * Takes one participant's update for an open round. `sender` is who authenticated (a proplet's id), when
   * authentication is on: it must be the update's proplet.
   */
  async update(u: FlUpdate, via: "http" | "mqtt", sender?: string): Promise<{ status: "accepted" }> {
    if (sender !== undefined && sender !== u.proplet_id) {
      throw forbidden(`proplet ${sender} may not send an update for proplet ${u.proplet_id}`);
    }
    const { e, r } = this.round(u.round_id);
    if (r.state !== "running" || this.closing.has(r.round_id)) {
      throw conflict(`round ${r.round_id} is closed (${r.state}): late update from ${u.proplet_id} refused`);
    }
    if (!r.tasks[u.proplet_id]) {
      throw forbidden(`proplet ${u.proplet_id} is not a participant of round ${r.round_id}`);
    }
    if (r.updates.some((x) => x.proplet_id === u.proplet_id)) {
      throw conflict(`proplet ${u.proplet_id} already sent its update for round ${r.round_id}`);
    }
    const d = this.decode(u, r.model_version);
    if ("error" in d) throw invalid(`update: ${d.error}`);
    this.store.fl.put("update", updateKey(r.round_id, u.proplet_id), JSON.stringify(u));
    const kept = this.received.get(r.round_id) ?? new Map<string, Tensors>();
    this.received.set(r.round_id, kept.set(u.proplet_id, d.tensors));
    r.updates.push({
      proplet_id: u.proplet_id,
      num_samples: u.num_samples,
      metrics: u.metrics ?? {},
      received_at: nowIso(),
      via,
    });
    await this.save(e, r);
    log.info(`round ${r.round_id}: update ${r.updates.length}/${r.k_of_n} from ${u.proplet_id} (${via})`);
    void this.settle(e, r);
    return { status: "accepted" };
  }

  private decode(u: FlUpdate, version: number): Decoded {
    const parsed = tensorPart(u.update);
    if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? "not tensors" };
    const t = decodeUpdate(parsed.data);
    if (typeof t === "string") return { error: t };
    const shape = checkShape(this.tensorsOf(version).tensors, t);
    return shape ? { error: shape } : { tensors: t };
  }

  private onTaskFinal(t: Task): void {
    if (!t.name.startsWith("fl-round-") || !isTerminal(t.state)) return;
    for (const e of this.experiments.values()) {
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
    if (outcome.error) return this.finish(e, r, "failed", outcome.error);
    this.closing.add(r.round_id);
    try {
      const updates: WeightedUpdate[] = [];
      for (const x of r.updates) {
        const tensors = this.received.get(r.round_id)?.get(x.proplet_id) ?? this.storedUpdate(r, x.proplet_id);
        if (tensors) updates.push({ tensors, numSamples: x.num_samples });
      }
      const started = performance.now();
      const next = aggregate(e.strategy, updates, e.trim);
      const version = (this.modelVersions().at(-1) ?? 0) + 1;
      this.store.fl.put("model", String(version), JSON.stringify(toJson(next, this.tensorsOf(r.model_version).json)));
      r.new_model_version = version;
      r.metrics = roundMetrics(r.updates);
      log.info(
        `round ${r.round_id}: ${updates.length} update(s) aggregated (${e.strategy}, ${(performance.now() - started).toFixed(1)} ms) → model v${version}`,
      );
      const last = r.index >= e.rounds;
      await this.finish(e, r, "completed");
      if (!last && e.state === "running") await this.launch(e, r.index + 1, version);
    } catch (err) {
      await this.finish(e, r, "failed", `aggregation failed: ${err instanceof Error ? err.message : err}`);
    } finally {
      this.closing.delete(r.round_id);
    }
  }

  /** An update as stored, for a round a restart left open. */
  private storedUpdate(r: Round, proplet: string): Tensors | undefined {
    const text = this.store.fl.get("update", updateKey(r.round_id, proplet));
    const d = text === undefined ? undefined : this.decode(JSON.parse(text) as FlUpdate, r.model_version);
    return d && "tensors" in d ? d.tensors : undefined;
  }

  /** Ends a round; a round that did not complete, or the last one, ends the experiment too. */
  private async finish(e: Experiment, r: Round, state: Round["state"], error?: string): Promise<void> {
    clearTimeout(this.deadlines.get(r.round_id));
    this.deadlines.delete(r.round_id);
    r.state = state;
    r.ended_at = nowIso();
    if (error) r.error = error;
    for (const x of r.updates) this.store.fl.delete("update", updateKey(r.round_id, x.proplet_id));
    this.received.delete(r.round_id);
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
      if (t && !isTerminal(t.state)) await this.tasks.stop(id).catch(() => {});
    }
  }

  private async save(e: Experiment, r: Round): Promise<void> {
    // The module is stored apart (once per configure): an experiment is rewritten on every update.
    this.store.fl.put("experiment", e.experiment_id, JSON.stringify({ ...e, task_file: undefined }));
    await this.store.durable();
    this.events.flRound(e, r);
  }
}

const current = (e: Experiment) => e.round_list.findLast((r) => r.state === "running");
const updateKey = (round: string, proplet: string) => `${round}|${proplet}`;
