import { conflict, forbidden, invalid } from "../core/errors.ts";
import { checkShape, decodeUpdate, type Tensors, type WeightedUpdate } from "../core/fl.ts";
import { type FlUpdate, type Round, tensorPart } from "../core/fl-experiment.ts";
import { nowIso } from "../core/time.ts";
import type { Storage } from "../storage/repository.ts";
import { updateKey } from "./fl-experiments.ts";
import type { FlRegistry } from "./fl-registry.ts";

// A round's updates: each participant's checked (one per participant, the base model's shape) and stored until
// the round closes, so a restart loses none; the coordinator (fl.ts) aggregates what `weighted` gives.

/** An update's tensors as the experiment's base model names them, or why they cannot count. */
type Decoded = { tensors: Tensors } | { error: string };

export class FlUpdates {
  /** Updates of open rounds as decoded when they came (after a restart, decoded again from storage). */
  private received = new Map<string, Map<string, Tensors>>();

  constructor(
    private store: Storage,
    private registry: FlRegistry,
  ) {}

  /** Takes one participant's update for round `r` (open unless `closing`), or refuses it saying why. */
  accept(u: FlUpdate, r: Round, via: "http" | "mqtt", closing: boolean): void {
    if (r.state !== "running" || closing) {
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
  }

  /** The round's updates with their sample counts, for aggregation. */
  weighted(r: Round): WeightedUpdate[] {
    const updates: WeightedUpdate[] = [];
    for (const x of r.updates) {
      const tensors = this.received.get(r.round_id)?.get(x.proplet_id) ?? this.stored(r, x.proplet_id);
      if (tensors) updates.push({ tensors, numSamples: x.num_samples });
    }
    return updates;
  }

  /** A closed round's updates are no longer kept. */
  forget(r: Round): void {
    for (const x of r.updates) this.store.fl.delete("update", updateKey(r.round_id, x.proplet_id));
    this.received.delete(r.round_id);
  }

  private decode(u: FlUpdate, version: number): Decoded {
    const parsed = tensorPart(u.update);
    if (!parsed.success) return { error: parsed.error.issues[0]?.message ?? "not tensors" };
    const t = decodeUpdate(parsed.data);
    if (typeof t === "string") return { error: t };
    const shape = checkShape(this.registry.tensorsOf(version).tensors, t);
    return shape ? { error: shape } : { tensors: t };
  }

  /** An update as stored, for a round a restart left open. */
  private stored(r: Round, proplet: string): Tensors | undefined {
    const text = this.store.fl.get("update", updateKey(r.round_id, proplet));
    const d = text === undefined ? undefined : this.decode(JSON.parse(text) as FlUpdate, r.model_version);
    return d && "tensors" in d ? d.tensors : undefined;
  }
}
