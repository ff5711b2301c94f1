import { afterEach, describe, expect, test } from "bun:test";
import { type Harness, harness } from "./harness.ts";

// Broadcast in the manager, proplets played by the test: every way a task is started (the dispatcher's start, as
// cron firings and workflows use it) fans out, and the task ends once every part did.

let h: Harness;
afterEach(() => h?.close());

describe("broadcast", () => {
  test("a start through the dispatcher (cron, workflows) fans out to every alive proplet; results per proplet", async () => {
    h = harness();
    h.proplet("p1");
    h.proplet("p2");
    const id = await h.create({ name: "add", broadcast: true, inputs: [1, 2] });
    await h.m.dispatcher.start(id);
    await h.settle();
    const starts = h.bus.starts.filter((s) => s.id !== id);
    expect(starts.map((s) => s.proplet_id).sort()).toEqual(["p1", "p2"]);
    expect(h.bus.starts.some((s) => s.id === id)).toBe(false);
    for (const s of starts) h.result(s.id, s.proplet_id!, "3");
    await h.settle();
    const done = h.m.tasks.get(id);
    expect(done.status).toBe("Completed");
    expect(Object.values(done.results as Record<string, string>)).toEqual(["3", "3"]);
    // A stop of a finished broadcast is refused as any other.
    await expect(h.m.dispatcher.stop(id)).rejects.toThrow("is not running");
  });
});
