import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Outbox } from "../../../src/proplet/outbox.ts";
import { RunRecord } from "../../../src/proplet/run-record.ts";
import { tempDir } from "../../helpers.ts";

describe("proplet run record", () => {
  test("received and finished runs survive a restart; one small line each", () => {
    const dir = tempDir();
    const a = new RunRecord(dir);
    a.received("r1", "t1");
    a.received("r2", "t2");
    a.finished("r1");
    // Its header (since when it is complete), then one line per receive and per finish.
    expect(readFileSync(join(dir, "runs.log"), "utf8").split("\n").filter(Boolean)).toHaveLength(4);
    expect(statSync(join(dir, "runs.log")).size).toBeLessThan(120);
    a.close();
    const b = new RunRecord(dir); // killed and restarted
    expect(b.get("r1")).toMatchObject({ task: "t1", finished: true });
    expect(b.get("r2")).toMatchObject({ task: "t2", finished: false });
    expect(b.get("r3")).toBeUndefined();
    expect(b.durable).toBe(true);
    // It has every run sent since it began (a minute of clock skew allowed), none from before.
    expect(b.covers(Date.now() + 61_000, 60_000)).toBe(true);
    expect(b.covers(Date.now() - 1000, 60_000)).toBe(false);
    expect(new RunRecord(undefined).durable).toBe(false);
  });

  test("after a restart, the runs received and never finished are the interrupted ones, a latent deployment not", () => {
    const dir = tempDir();
    const a = new RunRecord(dir, { maxRuns: 10 });
    a.received("done", "t1");
    a.finished("done");
    a.received("cut", "t2");
    a.received("deployed", "t3", true);
    a.close();
    const b = new RunRecord(dir); // killed and restarted
    expect(b.interrupted()).toEqual([["cut", "t2"]]);
    expect(b.get("deployed")).toMatchObject({ task: "t3", finished: false, latent: true });
    // The flag survives a compaction too.
    for (let i = 0; i < 70; i++) b.received(`x${i}`, "t");
    b.close();
    expect(new RunRecord(dir, { maxRuns: 100 }).get("deployed")).toMatchObject({ latent: true });
  });

  test("bounded: the oldest runs are forgotten and the log is compacted", () => {
    const dir = tempDir();
    const r = new RunRecord(dir, { maxRuns: 10, maxResults: 2 });
    for (let i = 0; i < 100; i++) {
      r.received(`r${i}`, "t");
      r.finished(`r${i}`);
    }
    r.close();
    const lines = readFileSync(join(dir, "runs.log"), "utf8").split("\n").filter(Boolean);
    // Rewritten once it doubles (and not before 64 lines): never every append, never without bound.
    expect(lines.length).toBeLessThanOrEqual(64);
    const again = new RunRecord(dir, { maxRuns: 10, maxResults: 2 });
    expect(again.get("r99")).toMatchObject({ finished: true });
    expect(again.get("r50")).toBeUndefined();
    // Runs it forgot were received after it began: it is complete only from the newest forgotten one on.
    expect(again.since).toBeGreaterThan(0);
    expect(again.covers(again.since + 1, 0)).toBe(true);
  });

  test("a delivered result is moved from the outbox, not written twice, and kept for a start sent again", async () => {
    const dir = tempDir();
    const record = new RunRecord(join(dir, "runs"), { maxRuns: 10, maxResults: 2 });
    const outbox = new Outbox(join(dir, "outbox"), undefined, undefined, record);
    for (const run of ["a", "b", "c"]) {
      record.received(run, "t");
      outbox.put({ topic: "r", payload: `{"run_id":"${run}"}`, kind: "result", task: "t", run });
      record.finished(run);
    }
    await outbox.drain(async () => {});
    expect(readdirSync(join(dir, "outbox"))).toEqual([]);
    // Two kept (the limit): the oldest one's file is gone.
    expect(readdirSync(join(dir, "runs", "results")).sort()).toEqual(["b.json", "c.json"]);
    expect(record.keptResult("c")).toBe('{"run_id":"c"}');
    expect(record.keptResult("a")).toBeUndefined();
    // A run id that is no safe file name is recorded, its result not kept.
    record.received("../x", "t");
    expect(record.resultFile("../x")).toBeUndefined();
  });
});
