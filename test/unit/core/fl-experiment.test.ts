import { describe, expect, test } from "bun:test";
import { decodeCbor } from "../../../src/core/cbor.ts";
import { decodeUpdate } from "../../../src/core/fl.ts";
import {
  ExperimentCreate,
  FlUpdate,
  modelVersionOf,
  roundId,
  roundMetrics,
  roundOutcome,
  tensorPart,
} from "../../../src/core/fl-experiment.ts";
import { cbor } from "../../cbor.ts";

// Experiments and rounds as data: the defaults, the refusals, when a round is done, and the CBOR an update may
// come as.

const base = { experiment_id: "e1", participants: ["a", "b"], task_wasm_image: "reg/fl:1" };

describe("experiments", () => {
  test("upstream's body gets its defaults; ours are checked", () => {
    const e = ExperimentCreate.parse(base);
    expect(e).toMatchObject({ model_ref: "fl/models/global_model_v0", timeout_s: 60, rounds: 1, strategy: "fedavg" });
    const bad = (body: object) => ExperimentCreate.safeParse({ ...base, ...body }).error?.issues[0];
    expect(bad({ task_wasm_image: undefined })?.message).toContain("task_wasm_image");
    expect(bad({ task_file: "AGFzbQ==" })?.message).toContain("one of them");
    expect(bad({ participants: [] })?.path).toEqual(["participants"]);
    expect(bad({ participants: ["a", "a"] })?.message).toContain("named twice");
    expect(bad({ experiment_id: "a/b" })?.path).toEqual(["experiment_id"]);
    expect(bad({ round_id: "r+1" })?.path).toEqual(["round_id"]);
    expect(bad({ rounds: 0 })?.path).toEqual(["rounds"]);
    expect(bad({ strategy: "krum" })?.path).toEqual(["strategy"]);
    expect(bad({ timeout_s: 0 })?.path).toEqual(["timeout_s"]);
  });

  test("model versions and round ids as upstream names them", () => {
    expect(modelVersionOf("fl/models/global_model_v7")).toBe(7);
    expect(modelVersionOf("models/12")).toBe(12);
    expect(modelVersionOf("latest")).toBe(0);
    expect(roundId("r", 1, 1)).toBe("r");
    expect(roundId("r", 2, 5)).toBe("r-2");
  });

  test("a round's metrics are weighted by samples; non-numbers are left out", () => {
    const u = (n: number, metrics: Record<string, unknown>) => ({
      proplet_id: "p",
      num_samples: n,
      metrics,
      received_at: "",
      via: "http" as const,
    });
    expect(roundMetrics([u(10, { loss: 1, note: "x" }), u(30, { loss: 0.2, accuracy: 0.9 })])).toEqual({
      loss: 0.4,
      accuracy: 0.9,
    });
  });

  test("a round is done at K-of-N, at its deadline with enough updates, or when every task ended", () => {
    const later = Date.parse("2030-01-01T00:00:00Z");
    const r = (n: number) => ({
      updates: Array.from({ length: n }, () => ({}) as never),
      k_of_n: 3,
      deadline: "2030-01-01T00:00:00Z",
      tasks: {},
    });
    expect(roundOutcome(r(3), 1, 0, 2)).toEqual({ done: true });
    expect(roundOutcome(r(2), 1, 0, 1)).toEqual({ done: false });
    expect(roundOutcome(r(2), 2, later, 1)).toEqual({ done: true });
    expect(roundOutcome(r(2), 2, 0, 0)).toEqual({ done: true });
    const failed = roundOutcome(r(1), 2, later, 1);
    expect(failed.done && failed.error).toBe("the round timed out with 1 update(s) of 3 needed; min_participants is 2");
    const ended = roundOutcome(r(0), 1, 0, 0);
    expect(ended.done && ended.error).toContain("every task of the round ended with 0 update(s)");
  });

  test("an update's meta keys are not tensors; anything else not a number is refused", () => {
    const ok = tensorPart({ w: [1, 2], b: 0, version: 3 });
    expect(ok.success && decodeUpdate(ok.data)).toEqual(
      new Map([
        ["w", Float64Array.from([1, 2])],
        ["b", Float64Array.from([0])],
      ]),
    );
    expect(tensorPart({ w: ["1"] }).success).toBe(false);
    expect(tensorPart({ w: { nested: [1] } }).success).toBe(false);
    expect(FlUpdate.safeParse({ round_id: "r", proplet_id: "p", update: {} }).success).toBe(true);
    expect(FlUpdate.safeParse({ round_id: "r", proplet_id: "p", num_samples: -1, update: {} }).success).toBe(false);
  });
});

describe("CBOR", () => {
  test("decodes what an update holds: maps, arrays, text, integers, floats, byte strings (as base64)", () => {
    const doc = { round_id: "r1", num_samples: 30, n: -5, update: { w: [1.5, -2.25, 3], b: 0.5 }, ok: true };
    expect(decodeCbor(cbor(doc))).toEqual(doc);
    // Byte string 0x01 0x02 0x03, half float 1.0, float32 0.5, indefinite array [1, 2].
    expect(decodeCbor(Uint8Array.from([0x43, 1, 2, 3]))).toBe("AQID");
    expect(decodeCbor(Uint8Array.from([0xf9, 0x3c, 0x00]))).toBe(1);
    expect(decodeCbor(Uint8Array.from([0xfa, 0x3f, 0, 0, 0]))).toBe(0.5);
    expect(decodeCbor(Uint8Array.from([0x9f, 1, 2, 0xff]))).toEqual([1, 2]);
  });

  test("a __proto__ key is a key, as JSON.parse keeps it, not the object's prototype", () => {
    const decoded = decodeCbor(cbor(JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'))) as Record<
      string,
      unknown
    >;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.keys(decoded)).toEqual(["__proto__", "a"]);
    expect((decoded as { polluted?: boolean }).polluted).toBeUndefined();
  });

  test("refuses what is truncated, trailing, too deep, or declares more than it holds", () => {
    expect(() => decodeCbor(Uint8Array.from([0x82, 1]))).toThrow("truncated");
    expect(() => decodeCbor(Uint8Array.from([1, 2]))).toThrow("after the item");
    expect(() => decodeCbor(new Uint8Array(100).fill(0x81))).toThrow("nested deeper");
    // An array claiming 2^32-1 items in 5 bytes allocates nothing.
    expect(() => decodeCbor(Uint8Array.from([0x9a, 0xff, 0xff, 0xff, 0xff]))).toThrow("truncated");
    expect(() => decodeCbor(Uint8Array.from([0x7f, 0x61]))).toThrow("truncated");
  });
});
