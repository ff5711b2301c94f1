import { z } from "zod";

// Federated learning's pure part (issue 13): model updates as named float tensors, checked before they count,
// and the strategies that aggregate them. No I/O: the coordinator room calls these.

/** A model or an update: named tensors; a scalar (upstream's `b`) is a tensor of one. */
export type Tensors = Map<string, Float64Array>;

export const STRATEGIES = ["fedavg", "fedprox", "median", "trimmed_mean"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** Most floats one update may carry, over all its tensors (a 64 Mi-float model is 512 MiB of doubles). */
export const MAX_UPDATE_FLOATS = 64 << 20;

const Name = z.string().regex(/^[A-Za-z0-9_.:/-]{1,128}$/, "tensor names are 1 to 128 letters, digits or _.:/-");

/**
 * An update's tensors as a client sends them: JSON numbers (`{"w":[…],"b":0.5}`), or, with `format: "f32-delta"`,
 * each tensor as base64 of little-endian f32.
 */
export const UpdateBody = z.union([
  z.record(Name, z.union([z.number(), z.array(z.number())])),
  z.object({ format: z.literal("f32-delta"), tensors: z.record(Name, z.string()) }),
]);
export type UpdateBody = z.infer<typeof UpdateBody>;

/** Decodes an update's tensors; a reason instead when they are malformed, not finite, or too large. */
export function decodeUpdate(body: UpdateBody): Tensors | string {
  const out: Tensors = new Map();
  let floats = 0;
  const entries: [string, number[] | Float32Array][] = [];
  if ("format" in body && body.format === "f32-delta") {
    for (const [k, b64] of Object.entries((body as { tensors: Record<string, string> }).tensors)) {
      const bytes = Buffer.from(b64, "base64");
      if (bytes.length % 4 !== 0) return `tensor ${k}: ${bytes.length} bytes are not a whole number of f32 values`;
      const copy = new Uint8Array(bytes); // aligned, whatever the Buffer's offset
      entries.push([k, new Float32Array(copy.buffer, 0, copy.length / 4)]);
    }
  } else {
    for (const [k, v] of Object.entries(body as Record<string, number | number[]>)) {
      entries.push([k, typeof v === "number" ? [v] : v]);
    }
  }
  if (!entries.length) return "the update holds no tensors";
  for (const [name, values] of entries) {
    floats += values.length;
    if (floats > MAX_UPDATE_FLOATS) return `the update holds more than ${MAX_UPDATE_FLOATS} floats`;
    const t = Float64Array.from(values);
    for (let i = 0; i < t.length; i++) {
      if (!Number.isFinite(t[i]!)) return `tensor ${name}: element ${i} is not a finite number`;
    }
    out.set(name, t);
  }
  return out;
}

/** Whether `u` has exactly the model's tensors with the model's shapes; a reason when it does not. */
export function checkShape(model: Tensors, u: Tensors): string | undefined {
  for (const [name, t] of model) {
    const v = u.get(name);
    if (!v) return `tensor ${name} is missing`;
    if (v.length !== t.length) return `tensor ${name} has ${v.length} elements, the model has ${t.length}`;
  }
  for (const name of u.keys()) if (!model.has(name)) return `tensor ${name} is not in the model`;
  return undefined;
}

export interface WeightedUpdate {
  tensors: Tensors;
  /** The client's local sample count: its weight in FedAvg. */
  numSamples: number;
}

/** FedAvg: each coordinate is the average of the updates' values weighted by their sample counts. */
export function fedAvg(updates: WeightedUpdate[]): Tensors {
  const total = updates.reduce((s, u) => s + u.numSamples, 0);
  // No samples reported at all: every update counts the same.
  const weight = (u: WeightedUpdate) => (total > 0 ? u.numSamples / total : 1 / updates.length);
  const out: Tensors = new Map();
  for (const [name, first] of updates[0]!.tensors) {
    const acc = new Float64Array(first.length);
    for (const u of updates) {
      const t = u.tensors.get(name)!;
      const w = weight(u);
      for (let i = 0; i < acc.length; i++) acc[i]! += w * t[i]!;
    }
    out.set(name, acc);
  }
  return out;
}

/** Coordinate-wise: for each element, `pick` sees the updates' values sorted ascending. */
function coordinatewise(updates: WeightedUpdate[], pick: (sorted: Float64Array) => number): Tensors {
  const out: Tensors = new Map();
  const column = new Float64Array(updates.length);
  for (const [name, first] of updates[0]!.tensors) {
    const tensors = updates.map((u) => u.tensors.get(name)!);
    const acc = new Float64Array(first.length);
    for (let i = 0; i < acc.length; i++) {
      for (let j = 0; j < tensors.length; j++) column[j] = tensors[j]![i]!;
      column.sort();
      acc[i] = pick(column);
    }
    out.set(name, acc);
  }
  return out;
}

/** Coordinate-wise median: one update far off cannot move it. */
export function median(updates: WeightedUpdate[]): Tensors {
  return coordinatewise(updates, (s) => {
    const m = s.length >> 1;
    // Halves first: two values near the largest double would overflow their sum to Infinity.
    return s.length % 2 ? s[m]! : s[m - 1]! / 2 + s[m]! / 2;
  });
}

/**
 * Coordinate-wise trimmed mean: the `trim` share of highest and of lowest values dropped (at least one each when
 * there are three or more updates), the rest averaged.
 */
export function trimmedMean(updates: WeightedUpdate[], trim = 0.1): Tensors {
  const n = updates.length;
  const k = n >= 3 ? Math.max(1, Math.floor(n * trim)) : 0;
  const kept = n - 2 * k;
  return coordinatewise(updates, (s) => {
    let sum = 0;
    for (let i = k; i < n - k; i++) sum += s[i]!;
    if (Number.isFinite(sum)) return sum / kept;
    // Values near the largest double overflow their sum: each divided first cannot (exact sums stay as above).
    let mean = 0;
    for (let i = k; i < n - k; i++) mean += s[i]! / kept;
    return mean;
  });
}

/** The first element of a model that is not a finite number, named (`w[3]`), or undefined. */
export function nonFinite(t: Tensors): string | undefined {
  for (const [name, v] of t) for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return `${name}[${i}]`;
  return undefined;
}

/** The next model from one round's accepted updates, by the experiment's strategy. */
export function aggregate(strategy: Strategy, updates: WeightedUpdate[], trim?: number): Tensors {
  if (!updates.length) throw new Error("no updates to aggregate");
  const next = byStrategy(strategy, updates, trim);
  // A model is JSON: a non-finite value would be stored as null, and every update to it refused after.
  const bad = nonFinite(next);
  if (bad) throw new Error(`the aggregate's ${bad} is not a finite number`);
  return next;
}

function byStrategy(strategy: Strategy, updates: WeightedUpdate[], trim?: number): Tensors {
  switch (strategy) {
    case "fedavg":
    case "fedprox": // the proximal term is the clients' (sent in hyperparams); the server averages as FedAvg
      return fedAvg(updates);
    case "median":
      return median(updates);
    case "trimmed_mean":
      return trimmedMean(updates, trim);
  }
}

/** A model as JSON shaped `like` the one it came from: a tensor that was a plain number (upstream's `b`) stays one. */
export function toJson(t: Tensors, like: Record<string, unknown>): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  for (const [name, v] of t) out[name] = typeof like[name] === "number" ? v[0]! : Array.from(v);
  return out;
}
