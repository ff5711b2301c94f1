// Aggregation cost: 10 updates of 1,000,000 floats each (one tensor), FedAvg, coordinate-wise median and trimmed
// mean, the median of 5 runs each. Prints one JSON line; `aggregate_ms` is FedAvg's (issue 13's goal: ≤ 200 ms
// on this machine).
//   bun scripts/bench/fedavg.ts [--updates 10] [--floats 1000000]

import { aggregate, type Strategy, type WeightedUpdate } from "../../src/core/fl.ts";
import { scriptArgs } from "../args.ts";

const { values } = scriptArgs(import.meta.path, {
  options: { updates: { type: "string", default: "10" }, floats: { type: "string", default: "1000000" } },
});
const N = Number(values.updates);
const F = Number(values.floats);
const updates: WeightedUpdate[] = Array.from({ length: N }, (_, u) => {
  const w = new Float64Array(F);
  for (let i = 0; i < F; i++) w[i] = Math.sin(i + u);
  return { tensors: new Map([["w", w]]), numSamples: 100 + u };
});

/** The median of 5 runs: the fastest alone would flatter. */
function median(strategy: Strategy): number {
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    aggregate(strategy, updates, 0.1);
    times.push(performance.now() - t0);
  }
  return +times.sort((a, b) => a - b)[2]!.toFixed(1);
}

console.log(
  JSON.stringify({
    updates: N,
    floats: F,
    aggregate_ms: median("fedavg"),
    median_ms: median("median"),
    trimmed_mean_ms: median("trimmed_mean"),
  }),
);
