import { describe, expect, test } from "bun:test";
import { isAlive, type Proplet, recordHeartbeat } from "../../../src/core/proplet.ts";
import { roundRobin } from "../../../src/core/scheduler.ts";

describe("proplets and scheduling", () => {
  const p = (id: string): Proplet => ({ id, name: id, metadata: {}, alive_history: [] });
  test("round robin rotates by id and wraps", () => {
    const c = [p("b"), p("a"), p("c")];
    expect(roundRobin(c, undefined)?.id).toBe("a");
    expect(roundRobin(c, "a")?.id).toBe("b");
    expect(roundRobin(c, "c")?.id).toBe("a");
    expect(roundRobin(c, "bb")?.id).toBe("c");
    expect(roundRobin([], "a")).toBeUndefined();
  });
  test("alive needs a recent heartbeat and no offline message", () => {
    const now = Date.parse("2026-01-01T00:00:30Z");
    const beat = recordHeartbeat(p("x"), "2026-01-01T00:00:10Z");
    expect(isAlive(beat, now, 30_000)).toBe(true);
    expect(isAlive(beat, now, 10_000)).toBe(false);
    expect(isAlive({ ...beat, offline: true }, now, 30_000)).toBe(false);
    let q = p("y");
    for (let i = 0; i < 15; i++) q = recordHeartbeat(q, new Date(i * 1000).toISOString());
    expect(q.alive_history.length).toBe(10);
  });
});
