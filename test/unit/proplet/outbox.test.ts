import { describe, expect, test } from "bun:test";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Outbox, type OutboxEntry } from "../../../src/proplet/outbox.ts";
import { tempDir } from "../../helpers.ts";

const result = (n: number): OutboxEntry => ({ topic: "r", payload: `{"n":${n}}`, kind: "result" });
const metrics = (n: number): OutboxEntry => ({ topic: "m", payload: `{"m":${n}}`, kind: "metrics" });

describe("proplet outbox", () => {
  test("what was queued survives a restart and is sent in order; acknowledged messages leave the disk", async () => {
    const dir = tempDir();
    const a = new Outbox(dir);
    for (let i = 0; i < 5; i++) a.put(result(i));
    writeFileSync(join(dir, "000000000099.result.json.tmp"), "half a wri"); // a write a crash cut short
    const b = new Outbox(dir); // the proplet restarted
    expect(b.size).toBe(5);
    const sent: string[] = [];
    await b.drain(async (e) => void sent.push(e.payload));
    expect(sent).toEqual([0, 1, 2, 3, 4].map((i) => `{"n":${i}}`));
    expect(readdirSync(dir)).toEqual([]);
    b.put(result(5)); // numbering goes on after a restart, so order holds across restarts too
    expect(new Outbox(dir).size).toBe(1);
  });

  test("a file in the outbox that is not a message it wrote is removed with a warning, never sent", async () => {
    const dir = tempDir();
    new Outbox(dir).put(result(0));
    writeFileSync(join(dir, "000000000002.result.json"), JSON.stringify({ topic: 7, payload: { x: 1 } }));
    writeFileSync(join(dir, "000000000003.result.json"), "not json");
    const warnings: string[] = [];
    const box = new Outbox(dir, undefined, (m) => warnings.push(m));
    expect(box.size).toBe(1);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain("000000000002.result.json is not a message");
    const sent: string[] = [];
    await box.drain(async (e) => void sent.push(e.payload));
    expect(sent).toEqual(['{"n":0}']);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a failed send keeps that message for the next drain; the ones acknowledged leave", async () => {
    const box = new Outbox(tempDir());
    for (let i = 0; i < 40; i++) box.put(result(i));
    let calls = 0;
    const flaky = async (e: OutboxEntry) => {
      calls++;
      if (e.payload === '{"n":35}') throw new Error("link down");
    };
    await expect(box.drain(flaky)).rejects.toThrow("link down");
    expect(calls).toBe(40); // the first window of 32, then the rest
    expect(box.size).toBe(1); // only the one that failed waits
    const sent: string[] = [];
    await box.drain(async (e) => void sent.push(e.payload));
    expect(sent).toEqual(['{"n":35}']);
  });

  test("bounded: when full, task metrics are given up before results, oldest first", () => {
    const warnings: string[] = [];
    const box = new Outbox(tempDir(), { maxEntries: 4, maxBytes: 1 << 20 }, (m) => warnings.push(m));
    box.put(metrics(0));
    box.put(result(1));
    box.put(metrics(2));
    box.put(result(3));
    box.put(result(4));
    box.put(result(5));
    expect(box.size).toBe(4);
    expect(box.dropped).toBe(2);
    box.put(result(6)); // no metrics left: the oldest result goes
    expect(box.dropped).toBe(3);
    expect(warnings[0]).toContain("outbox full");
  });

  test("without a dir (serve's local proplet) it is a queue in memory", async () => {
    const box = new Outbox(undefined);
    box.put(result(1));
    const sent: string[] = [];
    await box.drain(async (e) => void sent.push(e.topic));
    expect(sent).toEqual(["r"]);
  });
});
