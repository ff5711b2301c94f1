import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { http, type Serve, startServe } from "../helpers.ts";

// The token check on every REST request, attacked from outside a real serve. Whatever makes that check cheaper
// (the one-shot hash in core/digest.ts; no cache of checked tokens is kept, so no secret outlives its request) may
// not let a revoked or expired token through even once, nor grow with tokens an attacker makes up.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const rssMib = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
const get = (path: string, token: string) =>
  fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
/** A made-up token of `bytes` random bytes (4 KiB ones: 20,000 of them kept anywhere would be 80 MiB). */
const randomToken = (bytes = 32) =>
  `ppt_${Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url")}`;

describe("the token check", () => {
  test("20,000 made-up bearer tokens of 4 KiB: every one 401, serve's RSS grows by less than 40 MiB, the admin token still works", async () => {
    for (let i = 0; i < 500; i++) expect(await get("/tasks?limit=1", randomToken())).toBe(401); // warm
    const before = rssMib(s.proc.pid);
    const statuses = new Map<number, number>();
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < 20_000) {
          sent++;
          const st = await get("/tasks?limit=1", randomToken(3072));
          statuses.set(st, (statuses.get(st) ?? 0) + 1);
        }
      }),
    );
    const grew = rssMib(s.proc.pid) - before;
    console.log(`20,000 made-up tokens: ${JSON.stringify([...statuses])}, RSS grew ${grew.toFixed(1)} MiB`);
    expect([...statuses]).toEqual([[401, 20_000]]);
    expect(grew).toBeLessThan(40);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    expect(await get("/tasks?limit=1", s.token!)).toBe(200);
  }, 120_000);

  test("a token revoked while 8 clients use it: every request sent after the revocation's answer is 401", async () => {
    const made = await http(`${s.url}/tokens`, "POST", { role: "admin", name: "revoked-under-load" });
    expect(made.status).toBe(201);
    const token = made.body.token as string;
    let revokedAt = Number.POSITIVE_INFINITY;
    const after: number[] = [];
    let before200 = 0;
    let stop = false;
    const users = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const sentAt = performance.now();
        const st = await get("/tasks?limit=1", token);
        if (sentAt > revokedAt) after.push(st);
        else if (st === 200) before200++;
      }
    });
    await Bun.sleep(300);
    const del = await http(`${s.url}/tokens/${made.body.id}`, "DELETE");
    revokedAt = performance.now();
    expect(del.status).toBe(200);
    await Bun.sleep(300);
    stop = true;
    await Promise.all(users);
    expect(before200).toBeGreaterThan(10);
    expect(after.length).toBeGreaterThan(10);
    expect(after.filter((st) => st !== 401)).toEqual([]);
    expect(await get("/tasks?limit=1", s.token!)).toBe(200);
  });

  test("a token with a 1 s ttl, used without pause: every request sent at or past its expiry is 401 saying expired", async () => {
    const made = await http(`${s.url}/tokens`, "POST", { role: "viewer", name: "expires-under-load", ttl: 1 });
    expect(made.status).toBe(201);
    const expiresAt = Date.parse(made.body.expires_at);
    const late: { status: number; error: string }[] = [];
    let early200 = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() < expiresAt + 300) {
          const sentAt = Date.now();
          const res = await fetch(`${s.url}/tasks?limit=1`, {
            headers: { authorization: `Bearer ${made.body.token}` },
          });
          const body = (await res.json()) as { error?: string };
          if (sentAt >= expiresAt) late.push({ status: res.status, error: body.error ?? "" });
          else if (res.status === 200) early200++;
        }
      }),
    );
    expect(early200).toBeGreaterThan(5);
    expect(late.length).toBeGreaterThan(5);
    expect(late.filter((r) => r.status !== 401 || !r.error.includes("expired"))).toEqual([]);
  });

  test("a viewer's write and a proplet key off the FL routes stay refused (403)", async () => {
    const viewer = await http(`${s.url}/tokens`, "POST", { role: "viewer", name: "eyes-only" });
    const wrote = await fetch(`${s.url}/tasks`, {
      method: "POST",
      headers: { authorization: `Bearer ${viewer.body.token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "t", file: "AGFzbQEAAAA=" }),
    });
    expect(wrote.status).toBe(403);
    const p = await http(`${s.url}/entities`, "POST", { kind: "proplet", name: "keyed" });
    expect(p.status).toBe(201);
    expect(await get("/tasks?limit=1", p.body.api_key)).toBe(403);
    await http(`${s.url}/entities/${p.body.id}`, "DELETE");
    expect(await get("/fl/task", p.body.api_key)).toBe(401);
  });
});
