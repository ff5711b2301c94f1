import { expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Outbox } from "../../../src/proplet/outbox.ts";
import { RunRecord } from "../../../src/proplet/run-record.ts";
import { tempDir } from "../../helpers.ts";

// Kept results are bounded in bytes as well as in number: a guest's stdout result may be 8 MiB, and 200 of them
// kept for starts sent again would take 1.6 GB of an edge device's disk (before: bounded by number only).

const size = (dir: string) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

test("kept results stay within their byte bound, oldest first, across a restart", async () => {
  const dir = tempDir();
  const limits = { maxRuns: 100, maxResults: 50, maxResultBytes: 1 << 20 };
  const record = new RunRecord(join(dir, "runs"), limits);
  const outbox = new Outbox(join(dir, "outbox"), undefined, undefined, record);
  const big = "x".repeat(300 * 1024);
  for (const run of ["a", "b", "c", "d", "e"]) {
    record.received(run, "t");
    outbox.put({
      topic: "r",
      payload: JSON.stringify({ task_id: "t", run_id: run, results: big }),
      kind: "result",
      task: "t",
      run,
    });
    record.finished(run);
    await outbox.drain(async () => {});
  }
  const results = join(dir, "runs", "results");
  expect(size(results)).toBeLessThanOrEqual(1 << 20);
  expect(readdirSync(results).sort()).toEqual(["c.json", "d.json", "e.json"]);
  expect(record.keptResult("a")).toBeUndefined();
  expect(JSON.parse(record.keptResult("e")!).run_id).toBe("e");
  record.close();
  // Restarted with a smaller bound: the oldest go at once.
  const again = new RunRecord(join(dir, "runs"), { ...limits, maxResultBytes: 700 * 1024 });
  expect(readdirSync(results).sort()).toEqual(["d.json", "e.json"]);
  expect(JSON.parse(again.keptResult("d")!).run_id).toBe("d");
});
