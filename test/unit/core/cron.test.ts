import { describe, expect, test } from "bun:test";
import { checkSchedule, nextRun } from "../../../src/core/cron.ts";
import { MinHeap } from "../../../src/core/heap.ts";

// Pure rules of orchestration, without I/O.

describe("cron", () => {
  test("5 or 6 fields, time zones", () => {
    expect(checkSchedule("*/5 * * * *")).toBeUndefined();
    expect(checkSchedule("*/2 * * * * *")).toBeUndefined();
    expect(checkSchedule("* * *")).toContain("expected 5 fields");
    expect(checkSchedule("0 9 * * *", "Nowhere/Land")).toContain("unknown time zone");
    // The 30th of February: it parsed, was stored with no next run, and never fired.
    expect(checkSchedule("0 0 30 2 *")).toBe('"0 0 30 2 *" never fires (no date matches it)');
    expect(checkSchedule("0 0 29 2 *")).toBeUndefined(); // leap years
    const from = new Date("2026-03-01T12:00:00Z");
    expect(nextRun("0 9 * * *", "America/New_York", from)?.toISOString()).toBe("2026-03-01T14:00:00.000Z");
    expect(nextRun("*/2 * * * * *", "UTC", from)?.toISOString()).toBe("2026-03-01T12:00:02.000Z");
  });
  test("the heap pops in time order", () => {
    const h = new MinHeap<{ at: number }>();
    for (const at of [5, 1, 4, 2, 3, 0]) h.push({ at });
    const out: number[] = [];
    while (h.size) out.push(h.pop()!.at);
    expect(out).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
