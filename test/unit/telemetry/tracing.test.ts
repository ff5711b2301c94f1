import { describe, expect, test } from "bun:test";
import { MAX_QUEUED_SPANS, SpanKind, Tracer } from "../../../src/telemetry/tracing.ts";

// The tracer's bounds and parenting, without a collector: spans that cannot be sent are dropped past the bound.

describe("tracer", () => {
  test("off without an endpoint; spans past the queue's bound are dropped, not kept", () => {
    expect(new Tracer(undefined, "t").start("x", SpanKind.internal)).toBeUndefined();
    const t = new Tracer("http://127.0.0.1:9", "t"); // nothing listens there
    for (let i = 0; i < MAX_QUEUED_SPANS + 1000; i++) t.start("burst", SpanKind.server)?.end();
    expect(t.queued).toBe(MAX_QUEUED_SPANS);
  });

  test("a span started within another is its child, in the same trace; outside it, a new trace", () => {
    const t = new Tracer("http://127.0.0.1:9", "t");
    const parent = t.start("request", SpanKind.server)!;
    const child = t.within(parent, () => t.start("dispatch", SpanKind.producer))!;
    const alone = t.start("later", SpanKind.producer)!;
    expect(child.context.traceId).toBe(parent.context.traceId);
    expect(alone.context.traceId).not.toBe(parent.context.traceId);
  });
});
