import { describe, expect, test } from "bun:test";
import {
  aggregate,
  checkShape,
  decodeUpdate,
  median,
  nonFinite,
  STRATEGIES,
  type Tensors,
  toJson,
  trimmedMean,
  UpdateBody,
  type WeightedUpdate,
} from "../../../src/core/fl.ts";

// Aggregation checked by hand-computed values, and the refusals: what is malformed never counts.

const update = (body: Record<string, number | number[]>, numSamples: number): WeightedUpdate => {
  const t = decodeUpdate(UpdateBody.parse(body));
  if (typeof t === "string") throw new Error(t);
  return { tensors: t, numSamples };
};
const json = (t: Tensors) => toJson(t, { w: [], b: 0 });

describe("aggregation", () => {
  test("FedAvg weights by num_samples: (w=[1,1,1], b=1, n=10) and (w=[3,3,3], b=3, n=30) give 2.5", () => {
    const model = aggregate("fedavg", [update({ w: [1, 1, 1], b: 1 }, 10), update({ w: [3, 3, 3], b: 3 }, 30)]);
    expect(json(model)).toEqual({ w: [2.5, 2.5, 2.5], b: 2.5 });
    // FedProx's proximal term is the clients': the server's step is FedAvg.
    expect(
      json(aggregate("fedprox", [update({ w: [1, 1, 1], b: 1 }, 10), update({ w: [3, 3, 3], b: 3 }, 30)])),
    ).toEqual({ w: [2.5, 2.5, 2.5], b: 2.5 });
    // No sample counts at all: a plain mean.
    expect(json(aggregate("fedavg", [update({ w: [0], b: 0 }, 0), update({ w: [4], b: 2 }, 0)]))).toEqual({
      w: [2],
      b: 1,
    });
  });

  test("median and trimmed mean hold against an outlier that moves FedAvg", () => {
    const honest = [1, 2, 3, 4].map((v) => update({ w: [v, -v], b: v }, 10));
    const outlier = update({ w: [1000, -1000], b: 1000 }, 10);
    const all = [...honest, outlier];
    expect(json(median(all))).toEqual({ w: [3, -3], b: 3 });
    // Five updates, 20 %: the highest and the lowest value of each coordinate are dropped, the middle three averaged.
    expect(json(trimmedMean(all, 0.2))).toEqual({ w: [3, -3], b: 3 });
    expect(json(aggregate("fedavg", all)).b).toBe(202);
    // An even count: the median is the mean of the two middle values.
    expect(json(median(honest))).toEqual({ w: [2.5, -2.5], b: 2.5 });
  });

  test("values near the largest double aggregate to finite values by every strategy (no overflow to null)", () => {
    const big = 1.7e308;
    const two = [update({ w: [big, -big, 1], b: big }, 5), update({ w: [big, big, 1], b: big }, 5)];
    for (const s of STRATEGIES) {
      const m = json(aggregate(s, two));
      expect({ s, m }).toEqual({ s, m: { w: [big, 0, 1], b: big } });
    }
    const three = [...two, update({ w: [big, -big, 1], b: big }, 5)];
    expect(json(aggregate("trimmed_mean", three, 0.1)).b).toBe(big);
  });

  test("an aggregate that is not finite is refused, naming the element", () => {
    const inf = new Map([["w", new Float64Array([1, Number.POSITIVE_INFINITY])]]);
    expect(nonFinite(inf)).toBe("w[1]");
    expect(nonFinite(new Map([["w", new Float64Array([1, 2])]]))).toBeUndefined();
  });

  test("f32 deltas decode as little-endian floats", () => {
    const f = new Float32Array([0.5, -1.25, 3]);
    const t = decodeUpdate({ format: "f32-delta", tensors: { w: Buffer.from(f.buffer).toString("base64") } });
    expect(typeof t === "string" ? t : Array.from(t.get("w")!)).toEqual([0.5, -1.25, 3]);
  });
});

describe("refusals", () => {
  test("malformed, non-finite, wrongly shaped and empty updates are refused with a reason", () => {
    expect(UpdateBody.safeParse({ w: ["x"] }).success).toBe(false);
    expect(UpdateBody.safeParse({ "bad name!": [1] }).success).toBe(false);
    expect(decodeUpdate({})).toBe("the update holds no tensors");
    expect(decodeUpdate({ format: "f32-delta", tensors: { w: Buffer.from([1, 2, 3]).toString("base64") } })).toBe(
      "tensor w: 3 bytes are not a whole number of f32 values",
    );
    const nan = new Float32Array([1, Number.NaN]);
    expect(decodeUpdate({ format: "f32-delta", tensors: { w: Buffer.from(nan.buffer).toString("base64") } })).toBe(
      "tensor w: element 1 is not a finite number",
    );
    const model = update({ w: [0, 0, 0], b: 0 }, 0).tensors;
    expect(checkShape(model, update({ w: [1, 1], b: 0 }, 1).tensors)).toBe("tensor w has 2 elements, the model has 3");
    expect(checkShape(model, update({ w: [1, 1, 1] }, 1).tensors)).toBe("tensor b is missing");
    expect(checkShape(model, update({ w: [1, 1, 1], b: 0, c: 1 }, 1).tensors)).toBe("tensor c is not in the model");
    expect(checkShape(model, update({ w: [1, 1, 1], b: 0 }, 1).tensors)).toBeUndefined();
    expect(() => aggregate("median", [])).toThrow("no updates to aggregate");
  });
});
