import type { Context, Hono, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { EntityCreate, EntityKind, type Token, TokenCreate } from "../../core/identity.ts";
import type { Channel } from "../../core/topics.ts";
import type { Identities } from "../identities.ts";
import { PUBLIC_PROBES } from "./health.ts";
import { jsonBody, query } from "./http.ts";

// Bearer tokens on every route but `GET /health`: 401 without a valid one (saying how to get one), 403 when a
// viewer asks for a change, and tokens and identities are for admins only.

export interface AuthOptions {
  /** Told in a 401, so a user knows where the admin token is. */
  hint: string;
}

const READS = new Set(["GET", "HEAD", "OPTIONS"]);
/** What a proplet's own API key may call: the FL services a round's task uses. Its dataset is checked by the route. */
const PROPLET_ROUTES: [string, RegExp][] = [
  ["GET", /^\/fl\/(task|models(\/[^/]+)?|datasets\/[^/]+|rounds\/[^/]+\/complete)$/],
  ["POST", /^\/fl\/(update|update_cbor)$/],
];
/** The proplet a request authenticated as, when it used a proplet's API key. */
const propletOfRequest = new WeakMap<Request, string>();
export const propletOf = (c: Context): string | undefined => propletOfRequest.get(c.req.raw);
const ADMIN_ONLY = /^\/(tokens|entities)(\/|$)/;

/** The token a request authenticated with. */
const tokenOfRequest = new WeakMap<Request, Token>();
export const tokenOf = (c: Context): Token | undefined => tokenOfRequest.get(c.req.raw);

/** The console's session cookie (HttpOnly, SameSite=Strict) holds a token, as the Bearer header does. */
export const SESSION_COOKIE = "propeller_session";
/**
 * A change sent with the cookie must carry this header: a page of another site cannot add it without a CORS
 * preflight, which is never granted (on top of SameSite=Strict).
 */
export const CONSOLE_HEADER = "x-propeller-console";

export function requireToken(ids: Identities, opts: AuthOptions): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === "GET" && PUBLIC_PROBES.has(c.req.path)) return next();
    // Signing in and out of the console is how a session starts and ends.
    if (c.req.path === "/session" && c.req.method !== "GET") return next();
    const header = c.req.header("authorization") ?? "";
    const bearer = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    const cookie = bearer ? undefined : getCookie(c, SESSION_COOKIE);
    const text = bearer ?? cookie;
    if (!text)
      return c.json({ error: `authentication required: send Authorization: Bearer <token>; ${opts.hint}` }, 401);
    if (cookie && !READS.has(c.req.method) && c.req.header(CONSOLE_HEADER) !== "1") {
      return c.json({ error: `a change sent with the console's cookie must carry ${CONSOLE_HEADER}: 1` }, 403);
    }
    const token = ids.verifyToken(text);
    if (token) tokenOfRequest.set(c.req.raw, token);
    if (!token) {
      const entity = cookie ? undefined : ids.entityByKey(text);
      if (!entity) return c.json({ error: `invalid or revoked token; ${opts.hint}` }, 401);
      const may = PROPLET_ROUTES.some(([method, path]) => c.req.method === method && path.test(c.req.path));
      if (entity.kind !== "proplet" || !may) {
        return c.json({ error: `a ${entity.kind}'s API key may call only a round task's /fl routes` }, 403);
      }
      propletOfRequest.set(c.req.raw, entity.id);
      return next();
    }
    if (token.role !== "admin" && (!READS.has(c.req.method) || ADMIN_ONLY.test(c.req.path))) {
      return c.json(
        { error: `token "${token.name}" is a viewer token: it may read tasks and proplets, not change them` },
        403,
      );
    }
    return next();
  };
}

/** `/tokens…` and `/entities…`: REST tokens and MQTT identities. */
export function identityRoutes(app: Hono, ids: Identities, channel: Channel): void {
  app.post("/tokens", async (c) => c.json(await ids.createToken(await jsonBody(c, TokenCreate)), 201));
  app.get("/tokens", (c) => c.json({ tokens: ids.listTokens() }));
  app.delete("/tokens/:id", async (c) => {
    await ids.revokeToken(c.req.param("id"));
    return c.body(null, 204);
  });
  // The site's domain and channel come with a new identity: upstream's config.toml holds them beside the key.
  const site = { domain_id: channel.domainId, channel_id: channel.channelId };
  app.post("/entities", async (c) =>
    c.json({ ...(await ids.createEntity(await jsonBody(c, EntityCreate))), ...site }, 201),
  );
  app.get("/entities", (c) => c.json({ entities: ids.listEntities(query(c, "kind", EntityKind.optional())) }));
  app.delete("/entities/:id", async (c) => {
    await ids.revokeEntity(c.req.param("id"));
    return c.body(null, 204);
  });
}
