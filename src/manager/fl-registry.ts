import { conflict, forbidden, invalid, notFound } from "../core/errors.ts";
import { decodeUpdate, type Tensors } from "../core/fl.ts";
import { tensorPart } from "../core/fl-experiment.ts";
import type { Storage } from "../storage/repository.ts";

// Federated learning's model registry and data store (upstream's two services), stored by the FL repository:
// model versions as tensors, and each proplet's dataset. The coordinator (fl.ts) reads a round's base model here.

export class FlRegistry {
  /** A stored model's tensors by version, decoded once (a round checks every update's shape against it). */
  private modelCache = new Map<number, { json: Record<string, unknown>; tensors: Tensors }>();

  constructor(
    private store: Storage,
    /** A proplet's id from its id or name (fl.ts): datasets are kept under the id the proplet asks by. */
    private propletIdOf: (key: string) => string = (key) => key,
  ) {}

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

  /**
   * A model must be tensors (numbers or arrays of numbers) to be averaged; checked before it is stored. A version
   * is written once: another model under a stored version (an aggregate's included) would change what finished
   * rounds point at, and refuse the updates of a running one. The same model again is no change.
   */
  async putModel(version: number, model: Record<string, unknown>): Promise<{ version: number; status: "stored" }> {
    const t = this.decodeModel(model);
    if (typeof t === "string") throw invalid(`model: ${t}`);
    const text = JSON.stringify(model);
    const stored = this.store.fl.get("model", String(version));
    if (stored === text) return { version, status: "stored" };
    if (stored !== undefined) {
      const next = (this.modelVersions().at(-1) ?? 0) + 1;
      throw conflict(
        `version: model version ${version} is stored already; a version is written once (next free: ${next})`,
      );
    }
    this.store.fl.put("model", String(version), text);
    this.modelCache.delete(version);
    await this.store.durable();
    return { version, status: "stored" };
  }

  private decodeModel(model: Record<string, unknown>): Tensors | string {
    const parsed = tensorPart(model);
    if (!parsed.success) return parsed.error.issues[0]?.message ?? "not tensors";
    return decodeUpdate(parsed.data);
  }

  /** A stored model as JSON and as tensors; a model that is not tensors is refused naming its version. */
  tensorsOf(version: number): { json: Record<string, unknown>; tensors: Tensors } {
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

  /** A proplet's dataset, by its id or name; a proplet (`caller`) reads only its own. */
  dataset(key: string, caller?: string): unknown {
    const id = this.propletIdOf(key);
    if (caller !== undefined && caller !== id) throw forbidden(`proplet ${caller} may read only its own dataset`);
    const text = this.store.fl.get("dataset", id);
    if (text === undefined) throw notFound(`no dataset for ${id}`);
    return JSON.parse(text);
  }

  async putDataset(key: string, body: { schema?: string; data: unknown[] }) {
    const id = this.propletIdOf(key);
    const doc = { ...body, schema: body.schema ?? "fl-demo-dataset-v1", proplet_id: id, size: body.data.length };
    this.store.fl.put("dataset", id, JSON.stringify(doc));
    await this.store.durable();
    return { proplet_id: id, size: doc.size, status: "stored" as const };
  }
}
