import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { assemble, cpuSeconds, http, type Serve, startRunning, startServe, until } from "../helpers.ts";

// Hostile guests on serve's own proplet, whose pool workers run under SCHED_BATCH (src/proplet/runtime/sched.ts):
// more spinning guests than the machine has cores must not starve serve's event loop, and a stop or a timeout
// must still end each of them quickly.

let s: Serve;
let spin = "";
beforeAll(async () => {
  s = await startServe({ extra: ["--local-max-tasks", "4"] });
  spin = Buffer.from(await assemble(`(module (func (export "main") (loop (br 0))))`)).toString("base64");
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const state = async (id: string) => (await http(`${s.url}/tasks/${id}`)).body;

describe("four spinning guests on two cores", () => {
  test("serve answers while they spin; the timed one ends at its timeout, the others at their stop", async () => {
    const timed = await startRunning(s.url, { name: "spin-timed", file: spin, timeout_s: 1 }, "the timed spin to run");
    const others: Awaited<ReturnType<typeof startRunning>>[] = [];
    for (let i = 0; i < 3; i++) others.push(await startRunning(s.url, { name: `spin-${i}`, file: spin }));
    // The event loop's answers while four guests spin: each /health within a second.
    let slowest = 0;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      slowest = Math.max(slowest, performance.now() - t0);
      await Bun.sleep(100);
    }
    console.log(`/health while 4 guests spin: slowest ${slowest.toFixed(1)} ms`);
    expect(slowest).toBeLessThan(1000);
    const t = await until("the timed spin to end", async () => {
      const v = await state(timed.body.id);
      return v.state >= 3 ? v : undefined;
    });
    expect(t.state).toBeGreaterThanOrEqual(4);
    // Stopped under load: each ends within two seconds.
    const t0 = Date.now();
    for (const o of others) expect((await http(`${s.url}/tasks/${o.body.id}/stop`, "POST")).status).toBe(200);
    await until(
      "the stopped spins to end",
      async () => (await Promise.all(others.map((o) => state(o.body.id)))).every((v) => v.state === 6),
      5000,
    );
    console.log(`3 spinning guests stopped in ${Date.now() - t0} ms`);
    expect(Date.now() - t0).toBeLessThan(2000);
    // No guest spins on: serve's CPU falls back.
    const cpu0 = cpuSeconds(s.proc.pid);
    await Bun.sleep(1000);
    expect(cpuSeconds(s.proc.pid) - cpu0).toBeLessThan(0.5);
  }, 60_000);
});
