import { afterEach, describe, expect, test } from "bun:test";
import { TaskState } from "../../../src/core/states.ts";
import { ZERO_TIME } from "../../../src/core/time.ts";
import { until } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// Cron in-process: firings start tasks through the dispatcher; next_run is stored before a firing.

let h: Harness;
afterEach(() => h?.close());

describe("schedules", () => {
  test("a seconds-level schedule fires, stores the next firing first, and skips a firing while busy", async () => {
    const fired: number[] = [];
    h = harness({ observeFiring: (_id, dueAt) => fired.push(dueAt) });
    h.proplet("p1");
    const id = await h.create({ name: "tick", schedule: "* * * * * *", is_recurring: true });
    const armed = h.m.tasks.get(id).next_run;
    expect(armed).not.toBe(ZERO_TIME);
    await until("the first firing to start the task", () => h.bus.starts.length === 1, 3000);
    expect(fired[0]).toBe(Date.parse(armed));
    expect(Date.parse(h.m.tasks.get(id).next_run)).toBeGreaterThan(Date.parse(armed));
    // Still running at the next firing: overlap_policy "skip" (the default) sends nothing new.
    await until("a second firing", () => fired.length >= 2, 3000);
    await h.settle();
    expect(h.bus.starts).toHaveLength(1);
    expect(h.m.tasks.get(id).state).toBe(TaskState.Running);
  });

  test("a one-shot schedule fires once and is cleared; clearing a schedule disarms it", async () => {
    h = harness();
    h.proplet("p1");
    const once = await h.create({ name: "once", schedule: "* * * * * *", is_recurring: false });
    const cleared = await h.create({ name: "cleared", schedule: "* * * * * *", is_recurring: true });
    await h.m.tasks.update(cleared, { schedule: "" });
    await until("the one-shot firing", () => h.bus.starts.length === 1, 3000);
    expect(h.bus.starts[0]!.id).toBe(once);
    expect(h.m.tasks.get(once)).toMatchObject({ next_run: ZERO_TIME });
    expect(h.m.tasks.get(once).schedule).toBeUndefined();
    await Bun.sleep(1100);
    expect(h.bus.starts.map((s) => s.id)).toEqual([once]);
  });

  test("a paused schedule does not fire; resumed, it fires again; a task without a schedule cannot be paused", async () => {
    h = harness();
    h.proplet("p1");
    const id = await h.create({ name: "tick", schedule: "* * * * * *", is_recurring: true });
    expect((await h.m.tasks.pause(id, true)).paused).toBe(true);
    await Bun.sleep(1300);
    expect(h.bus.starts).toHaveLength(0);
    const resumed = await h.m.tasks.pause(id, false);
    expect(resumed.paused).toBe(false);
    expect(resumed.next_run).not.toBe(ZERO_TIME);
    await until("the resumed schedule to fire", () => h.bus.starts.length === 1, 3000);
    const plain = await h.create({ name: "plain" });
    await expect(h.m.tasks.pause(plain, true)).rejects.toThrow("has no schedule to pause");
  });
});
