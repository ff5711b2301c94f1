import { afterEach, expect, test } from "bun:test";
import { MAX_OUTPUT_CHUNK } from "../../../src/core/messages.ts";
import { TaskState } from "../../../src/core/states.ts";
import { MAX_KEPT_CHARS, MAX_TASKS, type OutputChunk } from "../../../src/manager/output.ts";
import { type Harness, harness } from "./harness.ts";

// A running task's output as the manager keeps it: only from the proplet running it, bounded per task and in
// the number of tasks, repeats dropped and gaps counted; followers are told when the task ends.

let h: Harness;
afterEach(() => h?.close());

const piece = (task_id: string, proplet_id: string, seq: number, data: string) =>
  ({ task_id, proplet_id, seq, stream: "stdout", data }) as const;

async function running(n: number): Promise<string[]> {
  h.proplet("p1", n);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = await h.create({ name: "add" });
    await h.m.tasks.start(id);
    ids.push(id);
  }
  await h.settle();
  return ids;
}

test("pieces from another proplet or for a task not running are dropped; repeats dropped, gaps counted", async () => {
  h = harness();
  const [id] = (await running(1)) as [string];
  h.m.output.onOutput(piece(id, "p2", 0, "forged\n"));
  h.m.output.onOutput(piece("no-such-task", "p1", 0, "x\n"));
  h.m.output.onOutput(piece(id, "p1", 0, "one\n"));
  h.m.output.onOutput(piece(id, "p1", 0, "one\n")); // QoS 1 redelivery
  h.m.output.onOutput(piece(id, "p1", 3, "four\n")); // 1 and 2 never came
  const kept = h.m.output.read(h.m.tasks.get(id));
  expect(kept.chunks.map((c) => c.data)).toEqual(["one\n", "four\n"]);
  expect(kept.missing_chunks).toBe(2);
  h.result(id, "p1", "done");
  await h.settle();
  h.m.output.onOutput(piece(id, "p1", 4, "late\n"));
  expect(h.m.output.read(h.m.tasks.get(id)).chunks).toHaveLength(2);
});

test("a task keeps its last MAX_KEPT_CHARS and says how much it dropped; followers end with the task", async () => {
  h = harness();
  const [id] = (await running(1)) as [string];
  const got: (OutputChunk | null)[] = [];
  h.m.output.follow(h.m.tasks.get(id), (c) => got.push(c));
  const big = "x".repeat(MAX_OUTPUT_CHUNK);
  const n = Math.ceil(MAX_KEPT_CHARS / MAX_OUTPUT_CHUNK) + 4;
  for (let i = 0; i < n; i++) h.m.output.onOutput(piece(id, "p1", i, big));
  const kept = h.m.output.read(h.m.tasks.get(id));
  const chars = kept.chunks.reduce((s, c) => s + c.data.length, 0);
  expect(chars).toBeLessThanOrEqual(MAX_KEPT_CHARS);
  expect(chars + kept.dropped_chars).toBe(n * MAX_OUTPUT_CHUNK);
  expect(kept.chunks.at(-1)!.seq).toBe(n - 1);
  h.result(id, "p1", "done");
  await h.settle();
  expect(got).toHaveLength(n + 1);
  expect(got.at(-1)).toBeNull();
  expect(h.m.tasks.get(id).state).toBe(TaskState.Completed);
});

test("at most MAX_TASKS tasks' output is kept: the oldest nobody follows is forgotten", async () => {
  h = harness();
  const ids = await running(MAX_TASKS + 1);
  for (const id of ids) h.m.output.onOutput(piece(id, "p1", 0, `${id}\n`));
  expect(h.m.output.read(h.m.tasks.get(ids[0]!)).chunks).toEqual([]);
  expect(h.m.output.read(h.m.tasks.get(ids.at(-1)!)).chunks).toHaveLength(1);
});
