import { describe, expect, test } from "bun:test";
import { leastLoaded, place, queueOrder, retryDelayMs } from "../../../src/core/scheduler.ts";
import type { Task } from "../../../src/core/task.ts";
import { TaskQueue } from "../../../src/manager/queue.ts";

// Pure rules of orchestration, without I/O.

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
