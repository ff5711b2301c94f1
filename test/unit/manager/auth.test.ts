import { afterEach, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { createApp } from "../../../src/manager/api/app.ts";
import { type Harness, harness } from "./harness.ts";

// REST authentication in-process: every route in the app's own route table, with no token, a bad one, a viewer's
// and a revoked one.

let h: Harness;
let app: Hono;
afterEach(() => h?.close());

const HINT = "the admin token is in /data/admin.token";

async function setup() {
  h = harness();
  app = createApp(h.m, { version: "test", instanceId: "i" }, undefined, { hint: HINT });
  const admin = (await h.m.identities.createToken({ role: "admin", name: "root" })).token;
  const viewer = (await h.m.identities.createToken({ role: "viewer", name: "eyes" })).token;
  return { admin, viewer };
}

const call = (method: string, path: string, token?: string) =>
  app.request(path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    ...(method === "GET" || method === "HEAD" ? {} : { body: "{}" }),
  });

/** Every route the app serves, with its parameters filled in. */
const routes = () =>
  app.routes.filter((r) => r.method !== "ALL").map((r) => ({ method: r.method, path: r.path.replace(/:(\w+)/g, "x") }));

describe("REST authentication", () => {
  test("every route but the probes (GET /health, /livez, /readyz) answers 401 without a token, and says how to get one", async () => {
    await setup();
    const all = routes();
    expect(all.length).toBeGreaterThan(25);
    for (const r of all) {
      const res = await call(r.method, r.path);
      if (r.method === "GET" && ["/health", "/livez", "/readyz"].includes(r.path)) {
        expect(res.status).toBe(200);
        // Nothing internal to a caller without a token.
        expect(JSON.stringify(await res.json())).not.toContain("instance_id");
        continue;
      }
      // Signing in and out of the console: a token is what POST /session takes, in its body.
      if (r.path === "/session" && r.method !== "GET") {
        expect(res.status).toBe(r.method === "POST" ? 400 : 204);
        continue;
      }
      // A joining proplet has no token yet: its join token is checked by the route ({} has none; no TLS: no CA).
      if (r.path === "/join" || r.path === "/join/ca") {
        expect(res.status).toBe(r.path === "/join" ? 400 : 404);
        expect(((await res.json()) as { error: string }).error).not.toContain(HINT);
        continue;
      }
      expect({ route: `${r.method} ${r.path}`, status: res.status }).toEqual({
        route: `${r.method} ${r.path}`,
        status: 401,
      });
      expect(((await res.json()) as { error: string }).error).toContain(HINT);
    }
    expect((await call("GET", "/tasks", "ppt_not-a-real-token")).status).toBe(401);
    expect((await call("GET", "/tasks", "")).status).toBe(401);
  });

  test("a viewer reads but changes nothing (403 on every write) and sees no tokens", async () => {
    const { viewer } = await setup();
    for (const r of routes()) {
      if (r.path === "/session" || r.path === "/join") continue; // signing in and out, and joining, are anyone's
      const res = await call(r.method, r.path, viewer);
      const write = r.method !== "GET" || /^\/(tokens|entities|join-tokens)/.test(r.path);
      if (write)
        expect({ route: `${r.method} ${r.path}`, status: res.status }).toEqual({
          route: `${r.method} ${r.path}`,
          status: 403,
        });
      else expect([200, 400, 404]).toContain(res.status);
    }
  });

  test("an admin makes and revokes tokens; a revoked token stops working at once; secrets are never listed", async () => {
    const { admin } = await setup();
    const made = await app.request("/tokens", {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ role: "viewer", name: "ci" }),
    });
    expect(made.status).toBe(201);
    const t = (await made.json()) as { id: string; token: string; role: string };
    expect(t.role).toBe("viewer");
    expect(t.token).toMatch(/^ppt_[\w-]{43}$/);
    expect((await call("GET", "/tasks", t.token)).status).toBe(200);
    const listed = await (await call("GET", "/tokens", admin)).text();
    expect(listed).not.toContain(t.token);
    expect(listed).not.toContain("hash");
    const gone = await call("DELETE", `/tokens/${t.id}`, admin);
    expect(gone.status).toBe(200);
    expect(await gone.json()).toMatchObject({ id: t.id, name: "ci", role: "viewer", revoked_at: expect.any(String) });
    expect((await call("GET", "/tasks", t.token)).status).toBe(401);
    expect((await call("DELETE", "/tokens/nope", admin)).status).toBe(404);
  });

  test("the last admin token is not revoked without force (it would lock every admin out); with force, or with another admin token, it is", async () => {
    const { admin } = await setup();
    const root = h.m.identities.listTokens().find((t) => t.name === "root")!;
    const refused = await call("DELETE", `/tokens/${root.id}`, admin);
    expect(refused.status).toBe(409);
    const { error } = (await refused.json()) as { error: string };
    expect(error).toContain("last admin token");
    expect(error).toContain("--force");
    expect((await call("GET", "/tasks", admin)).status).toBe(200);
    // By name too; a bad flag is named.
    expect((await call("DELETE", "/tokens/root", admin)).status).toBe(409);
    expect((await call("DELETE", `/tokens/${root.id}?force=yes`, admin)).status).toBe(400);
    // An expired admin token does not count as another way in.
    await h.m.identities.createToken({ role: "admin", name: "gone", ttl: 1 });
    await Bun.sleep(1100);
    expect((await call("DELETE", `/tokens/${root.id}`, admin)).status).toBe(409);
    // Nor does one that will expire: it would leave no admin once it has. Itself, it is revoked freely.
    const brief = await h.m.identities.createToken({ role: "admin", name: "brief", ttl: 3600 });
    expect((await call("DELETE", `/tokens/${root.id}`, admin)).status).toBe(409);
    expect((await call("DELETE", `/tokens/${brief.id}`, admin)).status).toBe(200);
    // With another working admin token, the first goes; the second is now the last one.
    const second = await h.m.identities.createToken({ role: "admin", name: "second" });
    expect((await call("DELETE", `/tokens/${root.id}`, second.token)).status).toBe(200);
    expect((await call("GET", "/tasks", admin)).status).toBe(401);
    expect((await call("DELETE", `/tokens/${second.id}`, second.token)).status).toBe(409);
    expect((await call("DELETE", `/tokens/${second.id}?force=true`, second.token)).status).toBe(200);
    expect((await call("GET", "/tasks", second.token)).status).toBe(401);
    // Viewer tokens are never "the last admin".
    const v = h.m.identities.listTokens().find((t) => t.name === "eyes")!;
    expect((await h.m.identities.revokeToken(v.id)).revoked_at).toBeString();
  });

  test("MQTT identities: the key is shown once, checked by hash, and dead once revoked", async () => {
    await setup();
    const e = await h.m.identities.createEntity({ kind: "proplet", id: "edge-7" });
    expect(h.m.identities.verifyEntity("edge-7", e.api_key)).toBe("proplet");
    expect(h.m.identities.verifyEntity("edge-7", `${e.api_key}x`)).toBeUndefined();
    expect(h.m.identities.verifyEntity("edge-8", e.api_key)).toBeUndefined();
    expect(JSON.stringify(h.m.identities.listEntities())).not.toContain(e.api_key);
    await expect(h.m.identities.createEntity({ kind: "proxy", id: "edge-7" })).rejects.toThrow("already exists");
    await h.m.identities.revokeEntity("edge-7");
    expect(h.m.identities.verifyEntity("edge-7", e.api_key)).toBeUndefined();
  });

  test("the console's session: a cookie set by POST /session, HttpOnly and SameSite=Strict; a change with it needs the console's header", async () => {
    const { admin, viewer } = await setup();
    const signIn = (token: string) =>
      app.request("/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token }),
      });
    const bad = await signIn("ppt_nope");
    expect(bad.status).toBe(401);
    expect(bad.headers.get("set-cookie")).toBeNull();
    const ok = await signIn(admin);
    expect(await ok.json()).toMatchObject({ name: "root", role: "admin", auth: true });
    const cookie = ok.headers.get("set-cookie")!;
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    const jar = cookie.split(";")[0]!;
    const withCookie = (method: string, path: string, extra: Record<string, string> = {}) =>
      app.request(path, {
        method,
        headers: { cookie: jar, "content-type": "application/json", ...extra },
        ...(method === "GET" ? {} : { body: JSON.stringify({ name: "t", file: "AGFzbQEAAAA=" }) }),
      });
    expect((await withCookie("GET", "/tasks")).status).toBe(200);
    expect(await (await withCookie("GET", "/session")).json()).toMatchObject({
      name: "root",
      role: "admin",
      auth: true,
    });
    const forged = await withCookie("POST", "/tasks");
    expect(forged.status).toBe(403);
    expect(((await forged.json()) as { error: string }).error).toContain("x-propeller-console");
    expect((await withCookie("POST", "/tasks", { "x-propeller-console": "1" })).status).toBe(201);
    // A viewer's cookie reads and does not write, header or not.
    const v = (await signIn(viewer)).headers.get("set-cookie")!.split(";")[0]!;
    const vPost = await app.request("/tasks", {
      method: "POST",
      headers: { cookie: v, "content-type": "application/json", "x-propeller-console": "1" },
      body: "{}",
    });
    expect(vPost.status).toBe(403);
    // A token made through the session asks for an admin token again: a cookie reaches every port of the host, and
    // a session taken there made itself a lasting admin token. A bearer token's request needs no such thing.
    const makeToken = (body: object) =>
      app.request("/tokens", {
        method: "POST",
        headers: { cookie: jar, "content-type": "application/json", "x-propeller-console": "1" },
        body: JSON.stringify({ name: "lasting", role: "admin", ...body }),
      });
    for (const body of [{}, { confirm_token: viewer }, { confirm_token: "ppt_wrong" }]) {
      const r = await makeToken(body);
      expect(r.status).toBe(403);
      expect(((await r.json()) as { error: string }).error).toContain("confirm_token: making a token from the console");
    }
    expect((await makeToken({ confirm_token: admin })).status).toBe(201);
    expect((await call("POST", "/tokens", admin)).status).toBe(201);
    // So do an MQTT identity (a manager's ran tasks on the proplets) and a join token: both outlive the session.
    for (const [path, body] of [
      ["/entities", { kind: "manager" }],
      ["/join-tokens", { uses: 100 }],
    ] as const) {
      const post = (extra: object) =>
        app.request(path, {
          method: "POST",
          headers: { cookie: jar, "content-type": "application/json", "x-propeller-console": "1" },
          body: JSON.stringify({ ...body, ...extra }),
        });
      const refused = await post({});
      expect({ path, status: refused.status }).toEqual({ path, status: 403 });
      expect(((await refused.json()) as { error: string }).error).toContain("asks for an admin token again");
      expect({ path, status: (await post({ confirm_token: admin })).status }).toEqual({ path, status: 201 });
    }
    // Signing out clears the cookie.
    const out = await app.request("/session", { method: "DELETE" });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie")).toContain("propeller_session=;");
  });

  test("the cookie holds a session id, not the token: refused as a Bearer token, dead once its token is revoked; failed sign-ins are limited", async () => {
    const { admin } = await setup();
    const made = (await h.m.identities.createToken({ role: "viewer", name: "v" }))!;
    const signIn = (body: unknown) =>
      app.request("/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const ok = await signIn({ token: made.token });
    const sid = /propeller_session=([^;]+)/.exec(ok.headers.get("set-cookie")!)![1]!;
    expect(sid).not.toBe(made.token);
    expect((await call("GET", "/tasks", sid)).status).toBe(401);
    const withCookie = () => app.request("/tasks", { headers: { cookie: `propeller_session=${sid}` } });
    expect((await withCookie()).status).toBe(200);
    expect((await call("DELETE", `/tokens/${made.id}`, admin)).status).toBe(200);
    expect((await withCookie()).status).toBe(401);
    // A body with neither (or both) is a 400 naming what to give; a token past 512 characters is refused unread.
    expect((await signIn({})).status).toBe(400);
    expect((await signIn({ token: "x", code: "y" })).status).toBe(400);
    // Ten failures a minute from one address; the eleventh failure is 429. A good token still signs in: everyone
    // behind one address (loopback, a reverse proxy) was locked out by ten bad tries.
    for (let i = 0; i < 10; i++) expect((await signIn({ token: `ppt_wrong${i}` })).status).toBe(401);
    const limited = await signIn({ token: "ppt_wrong10" });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBeTruthy();
    expect((await signIn({ token: admin })).status).toBe(200);
    expect((await signIn({ code: "not-a-code" })).status).toBe(429);
  });

  test("POST /tokens takes a ttl; a bad one is a 400 naming it", async () => {
    const { admin } = await setup();
    const post = (body: unknown) =>
      app.request("/tokens", {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const made = (await (await post({ role: "viewer", ttl: "1h" })).json()) as { expires_at: string };
    expect(Date.parse(made.expires_at) - Date.now()).toBeGreaterThan(3_590_000);
    const bad = await post({ role: "viewer", ttl: "forever" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain("ttl");
  });

  test("a proplet's API key opens only the FL routes a round's task calls, and not once it is revoked", async () => {
    await setup();
    const proplet = await h.m.identities.createEntity({ kind: "proplet" });
    const proxy = await h.m.identities.createEntity({ kind: "proxy" });
    expect((await call("GET", "/fl/models", proplet.api_key)).status).toBe(200);
    expect((await call("GET", "/tasks", proplet.api_key)).status).toBe(403);
    expect((await call("POST", "/fl/experiments", proplet.api_key)).status).toBe(403);
    expect((await call("GET", "/fl/models", proxy.api_key)).status).toBe(403);
    await h.m.identities.revokeEntity(proplet.id);
    const gone = await call("GET", "/fl/models", proplet.api_key);
    expect(gone.status).toBe(401);
  });
});
