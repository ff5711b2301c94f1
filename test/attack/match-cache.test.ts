import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { peer, type Serve, startServe } from "../helpers.ts";

// The broker's match cache (src/broker/match-cache.ts) keeps a list of subscribers per topic a message came on. A
// proplet may publish its FL update on `fl/rounds/<round>/updates/<itself>` with any round name, up to MQTT's
// 65,535-byte topic: topics it makes up must not stay in serve's memory.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

describe("a proplet publishing on topics it makes up", () => {
  test("1,200 distinct 60 KiB topics leave serve's RSS within bounds, and serve answers", async () => {
    const id = "p-topics";
    const c = await peer(s, "proplet", id);
    // Non-Latin-1 characters: two bytes each in the engine's strings.
    const pad = "\u0101".repeat(30_000);
    const before = rssMiB(s.proc.pid);
    for (let i = 0; i < 1200; i++) {
      await c.publishAsync(`fl/rounds/${pad}${i}/updates/${id}`, "{}", { qos: 1 });
    }
    await c.endAsync();
    await Bun.sleep(500);
    const after = rssMiB(s.proc.pid);
    console.log(`1,200 topics of 60 KiB: RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB`);
    // Kept, the last topics would hold 1,024 × 60 KiB = 60 MiB.
    expect(after - before).toBeLessThan(40);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  }, 120_000);
});
