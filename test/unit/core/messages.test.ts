import { describe, expect, test } from "bun:test";
import {
  AliveMsg,
  CreateMsg,
  decode,
  MAX_OUTPUT_CHUNK,
  OutputMsg,
  ResultMsg,
  StartMsg,
  TaskMetricsMsg,
} from "../../../src/core/messages.ts";
import { Timestamp } from "../../../src/core/time.ts";

describe("messages", () => {
  test("start accepts upstream nulls and numeric inputs", () => {
    const r = decode(
      StartMsg,
      JSON.stringify({ id: "t", name: "add", cli_args: null, file: null, inputs: [10, "20"], daemon: null }),
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).toMatchObject({ inputs: ["10", "20"], daemon: false, broadcast: false });
  });
  test("malformed payloads are reported, not thrown", () => {
    expect(decode(ResultMsg, "not json")).toEqual({ ok: false, error: "payload is not JSON" });
    const r = decode(AliveMsg, JSON.stringify({ status: "alive" }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain("proplet_id");
  });
  test("a heartbeat's nulls (upstream's absent values) are absent, its unknown keys dropped", () => {
    const r = decode(
      AliveMsg,
      JSON.stringify({ proplet_id: "p", status: null, namespace: "ns", tasks: null, runs: null, extra: 1 }),
    );
    expect(r).toEqual({ ok: true, value: { proplet_id: "p", namespace: "ns" } });
    if (r.ok) expect(Object.values(r.value)).not.toContain(null);
    expect(decode(AliveMsg, JSON.stringify({ proplet_id: "p", tasks: [1] }))).toMatchObject({ ok: false });
    expect(decode(AliveMsg, JSON.stringify({ proplet_id: "", status: "alive" }))).toMatchObject({ ok: false });
  });
  test("timestamps: RFC3339 or Rust SystemTime", () => {
    expect(Timestamp.parse({ secs_since_epoch: 1700000000, nanos_since_epoch: 5e8 })).toBe("2023-11-14T22:13:20.500Z");
    expect(Timestamp.parse("2024-01-01T00:00:00Z")).toBe("2024-01-01T00:00:00Z");
    expect(Timestamp.safeParse("yesterday").success).toBe(false);
  });
});

describe("bounds on what a proplet says", () => {
  test("the wire schema refuses oversized pieces, negative or fractional numbers and unknown streams", () => {
    const ok = { task_id: "t", proplet_id: "p", seq: 0, stream: "stdout", data: "x" };
    expect(OutputMsg.safeParse(ok).success).toBe(true);
    expect(OutputMsg.safeParse({ ...ok, data: "x".repeat(MAX_OUTPUT_CHUNK + 1) }).success).toBe(false);
    expect(OutputMsg.safeParse({ ...ok, seq: -1 }).success).toBe(false);
    expect(OutputMsg.safeParse({ ...ok, seq: 1.5 }).success).toBe(false);
    expect(OutputMsg.safeParse({ ...ok, stream: "stdin" }).success).toBe(false);
    expect(OutputMsg.safeParse({ ...ok, task_id: "" }).success).toBe(false);
  });

  test("run ids on the wire, and the runs and outage a heartbeat lists, are bounded and checked", () => {
    const beat = (extra: Record<string, unknown>) =>
      decode(AliveMsg, JSON.stringify({ proplet_id: "p", status: "alive", ...extra }));
    const at = "2026-01-01T00:00:00Z";
    expect(beat({ tasks: ["t"], runs: ["r"], offline_from: at, offline_to: at }).ok).toBe(true);
    expect(beat({ tasks: ["t"], runs: ["r".repeat(65)] })).toMatchObject({
      ok: false,
      error: expect.stringContaining("runs"),
    });
    expect(beat({ runs: Array.from({ length: 20_001 }, () => "r") })).toMatchObject({ ok: false });
    expect(beat({ tasks: Array.from({ length: 20_001 }, () => "t") })).toMatchObject({ ok: false });
    expect(beat({ offline_from: "yesterday", offline_to: at })).toMatchObject({
      ok: false,
      error: expect.stringContaining("offline_from"),
    });
    const result = (run_id: unknown) =>
      decode(ResultMsg, JSON.stringify({ task_id: "t", proplet_id: "p", run_id, results: "1" }));
    expect(result("r1").ok).toBe(true);
    expect(result(null).ok).toBe(true); // upstream: no run id
    expect(result("")).toMatchObject({ ok: false, error: expect.stringContaining("run_id") });
    expect(result("r".repeat(65))).toMatchObject({ ok: false, error: expect.stringContaining("run_id") });
    const start = (extra: Record<string, unknown>) =>
      decode(StartMsg, JSON.stringify({ id: "t", name: "n", ...extra }));
    expect(start({ run_id: "r", attempt: 2 }).ok).toBe(true);
    expect(start({ run_id: "r".repeat(65) })).toMatchObject({ ok: false, error: expect.stringContaining("run_id") });
    expect(start({ attempt: 0 })).toMatchObject({ ok: false, error: expect.stringContaining("attempt") });
  });

  test("announced capacity, heartbeat interval, descriptions and samples are bounded", () => {
    const create = (metadata: Record<string, unknown>) =>
      decode(CreateMsg, JSON.stringify({ proplet_id: "p", metadata }));
    expect(create({ max_tasks: 4, liveliness_interval_s: 5 }).ok).toBe(true);
    expect(create({ max_tasks: 1e9 })).toMatchObject({ ok: false, error: expect.stringContaining("max_tasks") });
    expect(create({ liveliness_interval_s: 1e9 })).toMatchObject({ ok: false });
    expect(create({ description: "x".repeat(2000) })).toMatchObject({ ok: false });
    expect(create({ extra: "x".repeat(9000) })).toMatchObject({ ok: false, error: expect.stringContaining("larger") });
    const sample = (size: number) =>
      decode(TaskMetricsMsg, JSON.stringify({ task_id: "t", proplet_id: "p", metrics: { blob: "x".repeat(size) } }));
    expect(sample(100).ok).toBe(true);
    expect(sample(20_000)).toMatchObject({ ok: false, error: expect.stringContaining("larger") });
  });
});
