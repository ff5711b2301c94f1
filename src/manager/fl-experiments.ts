import { notFound } from "../core/errors.ts";
import {
  type Experiment,
  Experiment as ExperimentDoc,
  experimentView,
  modelUri,
  type Round,
} from "../core/fl-experiment.ts";
import type { Storage } from "../storage/repository.ts";
import { readDoc } from "../storage/sqlite/doc.ts";
import type { ManagerEvents } from "./events.ts";
import type { PropletRegistry } from "./proplets.ts";

// Federated learning's experiments as kept: in memory for the coordinator (fl.ts), written through to the FL
// repository on every change (with the module apart), read back at start, and found by experiment or round id;
// the coordinator's read-only routes (what a round's client is to do, a round's status).

/** An experiment's open round, if any. */
export const current = (e: Experiment) => e.round_list.findLast((r) => r.state === "running");
/** Where a round's pending update from a proplet is stored. */
export const updateKey = (round: string, proplet: string) => `${round}|${proplet}`;

export class FlExperiments {
  readonly all = new Map<string, Experiment>();
  /** Round id → experiment id, for every round ever run. */
  readonly roundOf = new Map<string, string>();

  constructor(
    private store: Storage,
    private proplets: PropletRegistry,
    private events: ManagerEvents,
  ) {}

  /** Reads what was stored; returns each experiment's open round, for the coordinator to re-arm. */
  load(): { e: Experiment; open: Round }[] {
    const open: { e: Experiment; open: Round }[] = [];
    for (const id of this.store.fl.ids("experiment")) {
      const e = readDoc(ExperimentDoc, this.store.fl.get("experiment", id)!, `experiment ${id}`);
      if (!e.task_wasm_image && !e.task_file) e.task_file = this.store.fl.get("module", id);
      this.all.set(id, e);
      for (const r of e.round_list) this.roundOf.set(r.round_id, id);
      const o = e.round_list.find((r) => r.state === "running");
      if (o) open.push({ e, open: o });
    }
    return open;
  }

  list() {
    return [...this.all.values()].map((e) => this.view(e));
  }

  get(id: string) {
    return this.view(this.mustGet(id));
  }

  /** Participants are kept by id; the view names them as their proplets are named (their identities'). */
  private view(e: Experiment) {
    return { ...experimentView(e), participant_names: e.participants.map((id) => this.proplets.get(id)?.name ?? id) };
  }

  mustGet(id: string): Experiment {
    const e = this.all.get(id);
    if (!e) throw notFound(`experiment ${id} not found`);
    return e;
  }

  round(id: string): { e: Experiment; r: Round } {
    const eid = this.roundOf.get(id);
    const e = eid ? this.all.get(eid) : undefined;
    const r = e?.round_list.find((x) => x.round_id === id);
    if (!e || !r) throw notFound(`round ${id} not found`);
    return { e, r };
  }

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

  /**
   * A configure refused (its first round's tasks could not be made: the trust policy) leaves what was there
   * before: the 400 stored a failed experiment, and each retry added a failed round to it.
   */
  async undo(e: Experiment, before: Experiment | undefined, roundsBefore: number): Promise<void> {
    for (const r of e.round_list.splice(roundsBefore)) this.roundOf.delete(r.round_id);
    const id = e.experiment_id;
    if (before) {
      this.all.set(id, before);
      this.store.fl.put("experiment", id, JSON.stringify({ ...before, task_file: undefined }));
      if (before.task_file) this.store.fl.put("module", id, before.task_file);
      else this.store.fl.delete("module", id);
    } else {
      this.all.delete(id);
      this.store.fl.delete("experiment", id);
      this.store.fl.delete("module", id);
    }
    await this.store.durable();
  }

  async save(e: Experiment, r: Round): Promise<void> {
    // The module is stored apart (once per configure): an experiment is rewritten on every update.
    this.store.fl.put("experiment", e.experiment_id, JSON.stringify({ ...e, task_file: undefined }));
    await this.store.durable();
    this.events.flRound(e, r);
  }
}
