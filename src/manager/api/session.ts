import type { Hono } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { SessionCreate } from "../../core/identity.ts";
import type { Identities } from "../identities.ts";
import { SESSION_COOKIE, tokenOf } from "./auth.ts";
import { jsonBody } from "./http.ts";

// The console's session: `POST /session` with a token (the link serve prints, or one pasted) sets it as an
// HttpOnly, SameSite=Strict cookie, so page scripts never hold it; `GET /session` says who is signed in and with
// which role (the console disables what a viewer may not do); `DELETE /session` signs out.

export function sessionRoutes(app: Hono, ids: Identities, o: { auth: boolean; secure: boolean }): void {
  app.post("/session", async (c) => {
    const { token } = await jsonBody(c, SessionCreate);
    const t = o.auth ? ids.verifyToken(token) : undefined;
    if (o.auth && !t) return c.json({ error: "invalid or revoked token" }, 401);
    setCookie(c, SESSION_COOKIE, token, { httpOnly: true, sameSite: "Strict", path: "/", secure: o.secure });
    return c.json(t ? { name: t.name, role: t.role, auth: true } : { name: "anyone", role: "admin", auth: false });
  });
  app.get("/session", (c) => {
    const t = tokenOf(c);
    if (!o.auth) return c.json({ name: "anyone", role: "admin", auth: false });
    return c.json({ name: t?.name ?? "", role: t?.role ?? "viewer", auth: true });
  });
  app.delete("/session", (c) => {
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: o.secure });
    return c.body(null, 204);
  });
}
