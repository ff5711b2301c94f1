import type { Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { Attempts } from "../../core/attempts.ts";
import { SessionCreate, type Token } from "../../core/identity.ts";
import type { Identities } from "../identities.ts";
import { SESSION_TTL_MS, type Sessions } from "../sessions.ts";
import { SESSION_COOKIE, tokenOf } from "./auth.ts";
import { jsonBody } from "./http.ts";

// The console's session: `POST /session` with a token (pasted) or the one-time code of the link serve prints
// opens a session whose random id is set as an HttpOnly, SameSite=Strict cookie (Secure under TLS), so page
// scripts never hold a secret and the cookie is no token; `GET /session` says who is signed in and with which role
// (the console disables what a viewer may not do); `DELETE /session` signs out. Signing in needs no token, so it
// costs little before one is checked: the body is at most a few KiB (app.ts), nothing is kept for a failure, and
// failures are counted per client address and in all (429 past either, until the minute turns; a good token
// still signs in).

const ATTEMPTS = { perKey: 10, total: 100, windowMs: 60_000, maxKeys: 1024 };

/** The client's address, as cli/http-front.ts hands it to the app (none in-process). */
const addressOf = (c: Context): string => (c.env as { ip?: string } | undefined)?.ip ?? "unknown";

export function sessionRoutes(app: Hono, ids: Identities, sessions: Sessions, o: { auth: boolean; secure: boolean }) {
  const attempts = new Attempts(ATTEMPTS);
  const signedIn = (c: Context, t: Token) => {
    setCookie(c, SESSION_COOKIE, sessions.open(t), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      secure: o.secure,
      maxAge: SESSION_TTL_MS / 1000,
    });
    return c.json({ id: t.id, name: t.name, role: t.role, auth: true });
  };
  app.post("/session", async (c) => {
    if (!o.auth) return c.json({ name: "anyone", role: "admin", auth: false });
    const who = addressOf(c);
    const body = await jsonBody(c, SessionCreate);
    // A good token or code signs in whatever failed before from the address: everyone behind one address (loopback,
    // a reverse proxy) was locked out by ten bad tries. Both are 256-bit secrets, so checking first helps no guess.
    const failed = (error: string) => {
      const wait = attempts.blocked(who, Date.now());
      if (wait > 0) {
        c.header("Retry-After", String(Math.ceil(wait / 1000)));
        return c.json({ error: "too many failed sign-ins: try again in a minute" }, 429);
      }
      attempts.failed(who, Date.now());
      return c.json({ error }, 401);
    };
    if (body.code !== undefined) {
      const t = sessions.redeem(body.code);
      if (t) return signedIn(c, t);
      return failed("the sign-in link was used already or has expired: sign in with a token");
    }
    const check = ids.checkToken(body.token!);
    if (check && "ok" in check) return signedIn(c, check.ok);
    if (check) return failed(`token "${check.expired.name}" expired at ${check.expired.expires_at}`);
    return failed("invalid or revoked token");
  });
  app.get("/session", (c) => {
    const t = tokenOf(c);
    if (!o.auth) return c.json({ name: "anyone", role: "admin", auth: false });
    return c.json({ ...(t ? { id: t.id } : {}), name: t?.name ?? "", role: t?.role ?? "viewer", auth: true });
  });
  app.delete("/session", (c) => {
    const id = getCookie(c, SESSION_COOKIE);
    if (id) sessions.close(id);
    deleteCookie(c, SESSION_COOKIE, { path: "/", secure: o.secure });
    return c.body(null, 204);
  });
}
