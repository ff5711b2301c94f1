import { describe, expect, test } from "bun:test";
import { gunzipSync, inflateSync } from "node:zlib";
import { Hono, type MiddlewareHandler } from "hono";
import { chooseEncoding, compressAnswer, jsonAnswer } from "../../../src/manager/api/compress.ts";

// The API's compression: large JSON answers compressed as accepted, small ones (every answer of the dispatch path)
// sent as they are, which hono/compress did not do for `c.json` answers (no Content-Length to compare).

/** The compression step as app.ts runs it: after the route has answered. */
const compressing: MiddlewareHandler = async (c, next) => {
  await next();
  await compressAnswer(c);
};

function app(): Hono {
  const a = new Hono();
  a.use("*", compressing);
  a.get("/small", (c) => c.json({ id: "x" }));
  a.get("/large", (c) => c.json({ items: Array.from({ length: 200 }, (_, i) => ({ id: `task-${i}`, state: 3 })) }));
  a.get("/text", (c) => c.text("y".repeat(5000)));
  // Past 64 KiB: compressed on zlib's thread, not the event loop's.
  a.get("/huge", (c) => c.json({ results: Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join("\n") }));
  a.get("/keep", (c) => c.json({ big: "z".repeat(5000) }, 200, { "cache-control": "no-transform" }));
  return a;
}
const get = (path: string, accept?: string) =>
  app().request(path, { headers: accept ? { "accept-encoding": accept } : {} });

describe("compressAnswer", () => {
  test("a small JSON answer goes out as it is, with Vary", async () => {
    const res = await get("/small", "gzip, deflate, br");
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(res.headers.get("vary")).toBe("Accept-Encoding");
    expect(await res.json()).toEqual({ id: "x" });
  });

  test("a small one is the very Response the route built: neither read nor rebuilt (a task's way sends two)", async () => {
    let built: Response | undefined;
    const a = new Hono();
    a.use("*", compressing);
    a.post("/tasks", (c) => {
      built = c.json({ id: "x" }, 201);
      return built;
    });
    const res = await a.request("/tasks", { method: "POST", headers: { "accept-encoding": "gzip, deflate" } });
    expect(res).toBe(built!);
    expect(res.status).toBe(201);
    expect(res.headers.get("vary")).toBe("Accept-Encoding");
    expect(await res.json()).toEqual({ id: "x" });
  });

  test("jsonAnswer: small, marked and passed untouched; large, compressed as c.json's would be", async () => {
    const a = new Hono();
    a.use("*", compressing);
    a.get("/small", (c) => jsonAnswer(c, { id: "x" }, 201));
    a.get("/large", (c) => jsonAnswer(c, { items: Array.from({ length: 200 }, (_, i) => ({ id: `task-${i}` })) }));
    const s = await a.request("/small", { headers: { "accept-encoding": "gzip" } });
    expect([s.status, s.headers.get("content-type"), s.headers.get("content-encoding")]).toEqual([
      201,
      "application/json",
      null,
    ]);
    expect(await s.json()).toEqual({ id: "x" });
    const l = await a.request("/large", { headers: { "accept-encoding": "gzip" } });
    expect([l.status, l.headers.get("content-encoding")]).toEqual([200, "gzip"]);
    expect(JSON.parse(gunzipSync(new Uint8Array(await l.arrayBuffer())).toString()).items).toHaveLength(200);
  });

  test("a large one is gzipped when accepted, and reads back the same", async () => {
    const plain = await (await get("/large")).text();
    const res = await get("/large", "gzip, deflate, br");
    expect(res.headers.get("content-encoding")).toBe("gzip");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.byteLength).toBeLessThan(plain.length / 3);
    expect(gunzipSync(bytes).toString()).toBe(plain);
  });

  test("a huge one (compressed off the event loop) reads back the same, gzip and deflate", async () => {
    const plain = await (await get("/huge")).text();
    expect(plain.length).toBeGreaterThan(64 * 1024);
    const gz = await get("/huge", "gzip");
    expect(gz.headers.get("content-encoding")).toBe("gzip");
    expect(gunzipSync(new Uint8Array(await gz.arrayBuffer())).toString()).toBe(plain);
    const df = await get("/huge", "deflate");
    expect(df.headers.get("content-encoding")).toBe("deflate");
    expect(inflateSync(new Uint8Array(await df.arrayBuffer())).toString()).toBe(plain);
  });

  test("deflate when only deflate is accepted; nothing when none is", async () => {
    const plain = await (await get("/large")).text();
    const res = await get("/large", "deflate");
    expect(res.headers.get("content-encoding")).toBe("deflate");
    expect(inflateSync(new Uint8Array(await res.arrayBuffer())).toString()).toBe(plain);
    const none = await get("/large", "br, gzip;q=0");
    expect(none.headers.get("content-encoding")).toBeNull();
    expect(await none.text()).toBe(plain);
  });

  test("not JSON, or no-transform: left alone", async () => {
    expect((await get("/text", "gzip")).headers.get("content-encoding")).toBeNull();
    expect((await get("/keep", "gzip")).headers.get("content-encoding")).toBeNull();
  });

  test("chooseEncoding follows q-values, gzip first on a tie", () => {
    expect(chooseEncoding("gzip, deflate")).toBe("gzip");
    expect(chooseEncoding("deflate;q=1, gzip;q=0.5")).toBe("deflate");
    expect(chooseEncoding("*")).toBe("gzip");
    expect(chooseEncoding("br")).toBeUndefined();
    expect(chooseEncoding(undefined)).toBeUndefined();
    // Many distinct headers do not grow the memo without bound (it is cleared at its cap): still right after.
    for (let i = 0; i < 1000; i++) chooseEncoding(`gzip;q=0.${i % 10}, x-${i}`);
    expect(chooseEncoding("identity")).toBeUndefined();
  });
});
