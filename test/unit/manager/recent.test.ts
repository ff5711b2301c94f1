import { afterEach, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { RateRing } from "../../../src/core/rates.ts";
import { createApp } from "../../../src/manager/api/app.ts";
import { RateSampler } from "../../../src/manager/rates.ts";
import { b64 } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// `GET /events/recent` and `GET /stats/rates`: what the overview shows on arrival, from bounded rings.

let h: Harness | undefined;
let app: Hono;
let sampler: RateSampler | undefined;
afterEach(async () => {
  sampler?.stop();
  await h?.close();
  h = undefined;
  sampler = undefined;
});

const get = async (path: string) => {
  const res = await app.request(path);
  return { status: res.status, body: (await res.json()) as any };
};

const totals = (n: number) => ({
  started: n * 10,
  completed: n * 5,
  failed: n,
  mqtt_received: n * 100,
  mqtt_sent: n * 100,
  queue_depth: n,
  clients: 3,
});

describe("recent events", () => {
  test("the last events, newest first, without metrics samples, bounded and validated", async () => {
    h = harness();
    app = createApp(h!.m, { version: "test", instanceId: "i-1" });
    h.proplet("p1");
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await app.request("/tasks", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: `t${i}`, file: b64("add"), env: { SECRET: "s3cret" } }),
      });
      ids.push(((await r.json()) as { id: string }).id);
      await app.request(`/tasks/${ids[i]}/start`, { method: "POST" });
    }
    h.m.events.live.publish({ type: "metrics", kind: "proplet", proplet_id: "p1", sample: {}, at: "x" });
    await Bun.sleep(5);
    const r = await get("/events/recent");
    expect(r.status).toBe(200);
    const events = r.body.events as { type: string; task_id?: string; name?: string }[];
    expect(events.length).toBeGreaterThan(3);
    expect(events.some((e) => e.type === "metrics")).toBe(false);
    // Newest first: the last task started is the first task named.
    expect(events.find((e) => e.type === "task")?.task_id).toBe(ids[2]);
    expect(JSON.stringify(events)).not.toContain("s3cret");
    expect((await get("/events/recent?limit=2")).body.events).toHaveLength(2);
    for (const bad of ["0", "101", "abc", "1.5"]) {
      const b = await get(`/events/recent?limit=${bad}`);
      expect(b.status).toBe(400);
      expect(b.body.error).toStartWith("limit:");
    }
  });

  test("the ring keeps at most its capacity", async () => {
    h = harness();
    for (let i = 0; i < 250; i++) {
      h.m.events.live.publish({ type: "proplet", proplet_id: `p${i}`, alive: true, at: "x" });
    }
    await Bun.sleep(5);
    const all = h.m.recent.list(1000);
    expect(all).toHaveLength(100);
    expect((all[0] as { proplet_id: string }).proplet_id).toBe("p249");
  });
});

describe("rates", () => {
  test("per-second rates from totals, gauges as read, a bounded ring", () => {
    const ring = new RateRing(3);
    ring.push(0, totals(0));
    expect(ring.samples()).toEqual([]);
    ring.push(2000, totals(1));
    expect(ring.samples()[0]).toEqual({
      at: new Date(2000).toISOString(),
      started_per_s: 5,
      completed_per_s: 2.5,
      failed_per_s: 0.5,
      mqtt_messages_per_s: 100,
      queue_depth: 1,
      clients: 3,
    });
    for (let i = 2; i < 10; i++) ring.push(i * 2000, totals(i));
    expect(ring.samples()).toHaveLength(3);
    expect(ring.samples(1)[0]!.queue_depth).toBe(9);
  });

  test("GET /stats/rates: samples taken on a timer, limit validated", async () => {
    h = harness();
    let n = 0;
    sampler = new RateSampler(() => totals(n++), 20).start();
    app = createApp(h!.m, { version: "test", instanceId: "i-1", rates: sampler });
    await Bun.sleep(120);
    const r = await get("/stats/rates");
    expect(r.status).toBe(200);
    expect(r.body.interval_s).toBe(0.02);
    expect(r.body.samples.length).toBeGreaterThan(1);
    expect(r.body.samples.at(-1).queue_depth).toBeGreaterThan(r.body.samples[0].queue_depth);
    expect((await get("/stats/rates?limit=1")).body.samples).toHaveLength(1);
    expect((await get("/stats/rates?limit=121")).status).toBe(400);
  });
});
