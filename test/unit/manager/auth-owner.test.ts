import { afterEach, expect, test } from "bun:test";
import { Hono } from "hono";
import { ownerOf, propletOf, tokenOf, tokenRefusal } from "../../../src/manager/api/auth.ts";
import { Sessions } from "../../../src/manager/sessions.ts";
import { type Harness, harness } from "./harness.ts";

// Whom a request stands for (ownerOf, what a stream is held by): made from the bearer token only when asked, it
// must be what was set on every request before, {tokenId, expiresAt when the token expires}; a console session's
// carries its key and the session's own expiry; a proplet's API key and an open probe stand for no token.

let h: Harness;
afterEach(() => h?.close());

function app(sessions: Sessions) {
  const a = new Hono();
  const refuse = tokenRefusal(h.m.identities, sessions, { hint: "h" });
  a.use("*", async (c, next) => {
    const refused = refuse(c);
    if (refused) return refused;
    await next();
  });
  const seen = (c: Parameters<typeof ownerOf>[0]) =>
    c.json({ owner: ownerOf(c), token: tokenOf(c)?.id ?? null, proplet: propletOf(c) ?? null });
  a.get("/tasks", seen);
  a.get("/health", seen);
  a.get("/fl/task", seen);
  return a;
}

test("ownerOf: a bearer token's id and expiry, a session's key and expiry, nothing for a proplet key or a probe", async () => {
  h = harness();
  const sessions = new Sessions(h.m.identities);
  const a = app(sessions);
  const ids = h.m.identities;
  const forever = await ids.createToken({ role: "admin", name: "forever" });
  const brief = await ids.createToken({ role: "viewer", name: "brief", ttl: 3600 });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const get = async (path: string, headers: Record<string, string> = {}) =>
    (await a.request(path, { headers })).json() as Promise<{
      owner: object;
      token: string | null;
      proplet: string | null;
    }>;

  expect(await get("/tasks", bearer(forever.token))).toEqual({
    owner: { tokenId: forever.id },
    token: forever.id,
    proplet: null,
  });
  expect(await get("/tasks", bearer(brief.token))).toEqual({
    owner: { tokenId: brief.id, expiresAt: Date.parse(brief.expires_at!) },
    token: brief.id,
    proplet: null,
  });
  // The console's cookie: the session's key and its own expiry (never later than the token's).
  const sid = sessions.open(ids.verifyToken(brief.token)!);
  const s = sessions.resolve(sid)!;
  expect(await get("/tasks", { cookie: `propeller_session=${sid}` })).toEqual({
    owner: { tokenId: brief.id, sessionKey: s.key, expiresAt: s.expiresAt },
    token: brief.id,
    proplet: null,
  });
  // A proplet's API key on an FL route: the proplet, no token, no owner.
  const p = await ids.createEntity({ kind: "proplet", name: "p1" });
  expect(await get("/fl/task", bearer(p.api_key))).toEqual({ owner: {}, token: null, proplet: p.id });
  expect(await get("/health")).toEqual({ owner: {}, token: null, proplet: null });
  // Revoked: refused before any owner is made (forced: it is the site's only admin token).
  await ids.revokeToken(forever.id, true);
  expect((await a.request("/tasks", { headers: bearer(forever.token) })).status).toBe(401);
});
