import { describe, expect, test } from "bun:test";
import { checkSchedule, nextRun } from "../src/core/cron.ts";
import { decide, groupState, shouldRun, validateDag } from "../src/core/dag.ts";
import { MinHeap } from "../src/core/heap.ts";
import { leastLoaded, place, queueOrder, retryDelayMs } from "../src/core/scheduler.ts";
import type { Task } from "../src/core/task.ts";
import { TaskQueue } from "../src/manager/queue.ts";

// Pure rules of orchestration, without I/O.

describe("DAG", () => {
  test("validation names the tasks", () => {
    expect(validateDag([{ id: "a" }, { id: "b", depends_on: ["a"] }])).toBeUndefined();
    expect(validateDag([{ id: "a", depends_on: ["a"] }])).toBe("task a depends on itself");
    expect(validateDag([{ id: "a", depends_on: ["x"] }])).toBe("task a depends on x, which is not in the set");
    expect(
      validateDag([
        { id: "a", depends_on: ["c"] },
        { id: "b", depends_on: ["a"] },
        { id: "c", depends_on: ["b"] },
      ]),
    ).toMatch(/circular dependency: (a|b|c) -> (a|b|c) -> (a|b|c) -> (a|b|c)/);
  });

  test("run_if: success needs all parents Completed, failure needs one Failed", () => {
    expect(shouldRun(undefined, [3, 3])).toBe(true);
    expect(shouldRun("success", [3, 5])).toBe(false);
    expect(shouldRun("failure", [3, 4])).toBe(true);
    expect(shouldRun("failure", [3, 6])).toBe(false);
    expect(shouldRun("failure", [])).toBe(true);
  });

  test("skips cascade through all descendants in one pass", () => {
    const d = decide([
      { id: "a", state: 4 },
      { id: "b", state: 0, depends_on: ["a"] },
      { id: "c", state: 0, depends_on: ["b"] },
      { id: "d", state: 0, depends_on: ["c"] },
      { id: "r", state: 0, depends_on: ["a"], run_if: "failure" },
      { id: "s", state: 0, depends_on: ["r"] },
    ]);
    expect(d.skip.sort()).toEqual(["b", "c", "d"]);
    expect(d.start).toEqual(["r"]);
  });

  test("group state as upstream", () => {
    expect(groupState([])).toBe(0);
    expect(groupState([2, 0])).toBe(2);
    expect(groupState([3, 5])).toBe(3);
    expect(groupState([3, 6])).toBe(4);
    expect(groupState([3, 0])).toBe(0);
  });
});

describe("scheduling", () => {
  const p = (id: string, running: number, capacity = 2) => ({ id, running, capacity });
  test("least loaded picks the most free relative to capacity", () => {
    expect(leastLoaded([p("a", 1), p("b", 0), p("c", 2)])?.id).toBe("b");
    expect(leastLoaded([p("a", 2), p("b", 2)])).toBeUndefined();
    expect(leastLoaded([p("a", 3, 4), p("b", 1, 2)])?.id).toBe("b");
  });
  test("round robin skips full proplets", () => {
    expect(place("round-robin", [p("a", 2), p("b", 0), p("c", 0)], "a")?.id).toBe("b");
    expect(place("round-robin", [p("a", 0), p("b", 2)], "a")?.id).toBe("a");
  });
  test("queue order: priority, then oldest", () => {
    const q = [
      { id: "low-old", priority: 10, queuedAt: 1 },
      { id: "high-new", priority: 90, queuedAt: 3 },
      { id: "high-old", priority: 90, queuedAt: 2 },
    ].sort(queueOrder);
    expect(q.map((x) => x.id)).toEqual(["high-old", "high-new", "low-old"]);
  });
  test("the task queue stays in order through inserts, updates and removals", () => {
    const q = new TaskQueue();
    const e = (id: string, priority: number, queuedAt: number) => ({
      id,
      priority,
      queuedAt,
      task: { id } as unknown as Task,
    });
    for (let i = 0; i < 200; i++) q.set(e(`t${i}`, (i * 37) % 101, i));
    q.set(e("t5", 100, 5)); // priority raised
    q.delete("t7");
    const order = q.inOrder();
    expect(order.length).toBe(199);
    expect(order[0]!.id).toBe("t5");
    for (let i = 1; i < order.length; i++) expect(queueOrder(order[i - 1]!, order[i]!)).toBeLessThan(0);
    expect(q.has("t7")).toBe(false);
  });

  test("retry backoff doubles and is capped", () => {
    expect([1, 2, 3, 4].map((a) => retryDelayMs(1, a))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryDelayMs(100, 5, 300)).toBe(300_000);
  });
});

describe("cron", () => {
  test("5 or 6 fields, time zones", () => {
    expect(checkSchedule("*/5 * * * *")).toBeUndefined();
    expect(checkSchedule("*/2 * * * * *")).toBeUndefined();
    expect(checkSchedule("* * *")).toContain("expected 5 fields");
    expect(checkSchedule("0 9 * * *", "Nowhere/Land")).toContain("unknown time zone");
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
