import type { Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import { forbidden } from "../../core/errors.ts";
import { EntityCreate, EntityKind, LabelsUpdate, type Token, TokenCreate } from "../../core/identity.ts";
import type { JoinMqtt } from "../../core/join.ts";
import { QueryFlag } from "../../core/page.ts";
import type { Channel } from "../../core/topics.ts";
import type { Identities } from "../identities.ts";
import type { Sessions } from "../sessions.ts";
import { PUBLIC_PROBES } from "./health.ts";
import { jsonBody, query } from "./http.ts";

// Bearer tokens (or the console's session cookie) on every route but `GET /health`: 401 without a valid one
// (saying how to get one, and "expired" for a token past its expiry), 403 when a viewer asks for a change, and
// tokens and identities are for admins only. A token is never taken from a query string: an address stays in
// browser history and server logs, and goes out in a Referer.

export interface AuthOptions {
  /** Told in a 401, so a user knows where the admin token is; it names no path of the server's disk. */
  hint: string;
  /** The console's sessions; made for the app when not given (serve gives its own, to mint the sign-in link). */
  sessions?: Sessions;
}

const READS = new Set(["GET", "HEAD", "OPTIONS"]);
/** What a proplet's own API key may call: the FL services a round's task uses. Its dataset is checked by the route. */
const PROPLET_ROUTES: [string, RegExp][] = [
  ["GET", /^\/fl\/(task|models(\/[^/]+)?|datasets\/[^/]+|rounds\/[^/]+\/complete)$/],
  ["POST", /^\/fl\/(update|update_cbor)$/],
];
// Who a request authenticated as is kept by its context, never by `c.req.raw`: the body limit (limits.ts) puts
// another Request there before the route runs when a body comes chunked, and a proplet's key sent that way was
// taken by /fl/update as no proplet at all (an update for another participant counted).

/** The proplet a request authenticated as, when it used a proplet's API key. */
const propletOfRequest = new WeakMap<Context, string>();
export const propletOf = (c: Context): string | undefined => propletOfRequest.get(c);
const ADMIN_ONLY = /^\/(tokens|entities|join-tokens)(\/|$)/;
const BEARER = /^Bearer\s+(\S+)$/i;

/** The token a request authenticated with. */
const tokenOfRequest = new WeakMap<Context, Token>();
export const tokenOf = (c: Context): Token | undefined => tokenOfRequest.get(c);

/** Whom a request stands for, for the streams it may open: its token, and the console session it came with. */
export interface Owner {
  tokenId?: string;
  sessionKey?: string;
  /** When the token (or the session) stops being valid, ms since the epoch. */
  expiresAt?: number;
}
/** Set for a console session only: a bearer token's owner is made from the token when a stream asks (ownerOf). */
const ownerOfRequest = new WeakMap<Context, Owner>();
export const ownerOf = (c: Context): Owner => {
  const known = ownerOfRequest.get(c);
  if (known) return known;
  const token = tokenOfRequest.get(c);
  if (!token) return {};
  const expiresAt = token.expires_at ? Date.parse(token.expires_at) : undefined;
  return { tokenId: token.id, ...(expiresAt ? { expiresAt } : {}) };
};

/** The console's session cookie (HttpOnly, SameSite=Strict) holds a session id, never a token (sessions.ts). */
export const SESSION_COOKIE = "propeller_session";
/**
 * A change sent with the cookie must carry this header: a page of another site cannot add it without a CORS
 * preflight, which is never granted (on top of SameSite=Strict).
 */
export const CONSOLE_HEADER = "x-propeller-console";

/**
 * The answer to a request without valid credentials for it (401 or 403), or undefined to let it through (the
 * token is then `tokenOf(c)`). A plain check rather than a middleware, so app.ts runs it in one step with the
 * others.
 */
export function tokenRefusal(
  ids: Identities,
  sessions: Sessions,
  opts: AuthOptions,
): (c: Context) => Response | undefined {
  return (c) => {
    const { method, path } = c.req;
    if (method === "GET" && PUBLIC_PROBES.has(path)) return;
    // A joining proplet has no token yet: its join token is checked by the route (join.ts), bounded there.
    if ((method === "GET" && path === "/join/ca") || (method === "POST" && path === "/join")) return;
    // Signing in and out of the console is how a session starts and ends.
    if (path === "/session" && method !== "GET") return;
    const header = c.req.raw.headers.get("authorization") ?? "";
    const bearer = BEARER.exec(header)?.[1];
    const cookie = bearer ? undefined : getCookie(c, SESSION_COOKIE);
    if (!bearer && !cookie)
      return c.json({ error: `authentication required: send Authorization: Bearer <token>; ${opts.hint}` }, 401);
    if (cookie && !READS.has(method) && c.req.header(CONSOLE_HEADER) !== "1") {
      return c.json({ error: `a change sent with the console's cookie must carry ${CONSOLE_HEADER}: 1` }, 403);
    }
    let token: Token | undefined;
    if (cookie) {
      const s = sessions.resolve(cookie);
      if (!s) return c.json({ error: "the console's session has ended (signed out, expired or revoked)" }, 401);
      token = s.token;
      ownerOfRequest.set(c, { tokenId: token.id, sessionKey: s.key, expiresAt: s.expiresAt });
    } else {
      const check = ids.checkToken(bearer!);
      if (check && "expired" in check) {
        return c.json({ error: `token "${check.expired.name}" expired at ${check.expired.expires_at}` }, 401);
      }
      // Its owner (for streams, ownerOf) is made from the token only when asked: every request made one and set
      // it in a WeakMap, and hardly any opens a stream.
      token = check?.ok;
    }
    if (token) tokenOfRequest.set(c, token);
    if (!token) {
      const entity = ids.entityByKey(bearer!);
      if (!entity) return c.json({ error: `invalid or revoked token; ${opts.hint}` }, 401);
      const may = PROPLET_ROUTES.some(([m, p]) => method === m && p.test(path));
      if (entity.kind !== "proplet" || !may) {
        return c.json({ error: `a ${entity.kind}'s API key may call only a round task's /fl routes` }, 403);
      }
      propletOfRequest.set(c, entity.id);
      return;
    }
    if (token.role !== "admin" && (!READS.has(method) || ADMIN_ONLY.test(path))) {
      // Reading tokens and identities is an admin's too: "not change them" told a viewer reading them nothing.
      const what = READS.has(method) ? "not read tokens or identities" : "not change anything";
      return c.json(
        { error: `token "${token.name}" is a viewer token: it may read tasks, proplets and the like, ${what}` },
        403,
      );
    }
  };
}

/**
 * With the console's cookie, what outlives the session (a token, an MQTT identity, a join token) asks for an admin
 * token again: cookies ignore ports, so every service on this host receives the session, and with it an identity
 * of kind manager ran tasks and a token of role admin outlived the session's sign-out.
 */
export function confirmAgain(c: Context, ids: Identities, confirm: string | undefined, what: string): void {
  if (ownerOfRequest.get(c)?.sessionKey === undefined) return;
  const again = confirm ? ids.checkToken(confirm) : undefined;
  if (!again || !("ok" in again) || again.ok.role !== "admin")
    throw forbidden(
      `confirm_token: ${what} from the console asks for an admin token again (a session's cookie reaches every port of this host)`,
    );
}

/** `/tokens…` and `/entities…`: REST tokens and MQTT identities. */
export function identityRoutes(app: Hono, ids: Identities, channel: Channel, mqtt?: JoinMqtt): void {
  app.post("/tokens", async (c) => {
    const { confirm_token, ...body } = await jsonBody(c, TokenCreate);
    confirmAgain(c, ids, confirm_token, "making a token");
    return c.json(await ids.createToken(body), 201);
  });
  app.get("/tokens", (c) => c.json({ tokens: ids.listTokens() }));
  // The token revoked, as the CLI says which one it was: its id, name, role and when it was revoked.
  app.delete("/tokens/:id", async (c) =>
    c.json(await ids.revokeToken(c.req.param("id"), query(c, "force", QueryFlag))),
  );
  // The site's domain and channel come with a new identity: upstream's config.toml holds them beside the key; and
  // where its broker listens, as a join is told (provision says how a proplet reaches it).
  const site = { domain_id: channel.domainId, channel_id: channel.channelId, ...(mqtt ? { mqtt } : {}) };
  app.post("/entities", async (c) => {
    const { confirm_token, ...body } = await jsonBody(c, EntityCreate);
    confirmAgain(c, ids, confirm_token, "making an identity");
    return c.json({ ...(await ids.createEntity(body)), ...site }, 201);
  });
  app.get("/entities", (c) => c.json({ entities: ids.listEntities(query(c, "kind", EntityKind.optional())) }));
  // A proplet's labels, set by the operator: what tasks' requirements rely on (its own claims need not count).
  app.put("/entities/:id/labels", async (c) =>
    c.json(await ids.setLabels(c.req.param("id"), (await jsonBody(c, LabelsUpdate)).labels)),
  );
  app.delete("/entities/:id", async (c) => {
    await ids.revokeEntity(c.req.param("id"));
    return c.body(null, 204);
  });
}
