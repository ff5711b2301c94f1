import type { Context, Hono } from "hono";
import { Attempts } from "../../core/attempts.ts";
import { type JoinMqtt, JoinRedeem, JoinTokenCreate } from "../../core/join.ts";
import type { Channel } from "../../core/topics.ts";
import { tag } from "../../log.ts";
import type { Identities } from "../identities.ts";
import type { JoinTokens } from "../join.ts";
import { confirmAgain } from "./auth.ts";
import { jsonBody } from "./http.ts";

const log = tag("manager");

// Join tokens on REST. `POST|GET /join-tokens`, `DELETE /join-tokens/{id}`: an admin's (auth.ts). The two routes a
// joining proplet calls take no bearer token, by design: `GET /join/ca` answers the site CA's certificate (public:
// every TLS handshake shows it), `POST /join` a proplet identity for a valid join token. Before a token is checked
// a request costs at most 4 KiB of body (limits.ts), and failures are limited per client address and in all, as
// sign-ins are; every refusal reads the same, so a caller learns nothing of which tokens exist.

/** What serve tells a joining proplet: the CA it pins (with TLS) and where its broker is. */
export interface JoinSite {
  caPem?: string;
  caHash?: string;
  mqtt: JoinMqtt;
}

const ATTEMPTS = { perKey: 10, total: 100, windowMs: 60_000, maxKeys: 1024 };
const REFUSED = "invalid join token (unknown, expired, revoked or used up): ask the site's admin for a new one";

const addressOf = (c: Context): string => (c.env as { ip?: string } | undefined)?.ip ?? "unknown";

export function joinRoutes(
  app: Hono,
  joins: JoinTokens,
  site: JoinSite | undefined,
  channel: Channel,
  ids: Identities,
): void {
  const attempts = new Attempts(ATTEMPTS);
  app.post("/join-tokens", async (c) => {
    const { confirm_token, ...body } = await jsonBody(c, JoinTokenCreate);
    confirmAgain(c, ids, confirm_token, "making a join token");
    return c.json(await joins.create(body, site?.caHash), 201);
  });
  app.get("/join-tokens", (c) => c.json({ join_tokens: joins.list() }));
  app.delete("/join-tokens/:id", async (c) => {
    await joins.revoke(c.req.param("id"));
    return c.body(null, 204);
  });
  app.get("/join/ca", (c) =>
    site?.caPem
      ? c.body(site.caPem, 200, { "content-type": "application/x-pem-file" })
      : c.json({ error: "this site serves no TLS with a CA: there is no CA to pin" }, 404),
  );
  app.post("/join", async (c) => {
    const who = addressOf(c);
    const wait = attempts.blocked(who, Date.now());
    if (wait > 0) {
      c.header("Retry-After", String(Math.ceil(wait / 1000)));
      return c.json({ error: "too many failed joins: try again in a minute" }, 429);
    }
    let token: string;
    try {
      token = (await jsonBody(c, JoinRedeem)).token;
    } catch (e) {
      attempts.failed(who, Date.now());
      throw e;
    }
    const r = await joins.redeem(token);
    if ("refused" in r) {
      attempts.failed(who, Date.now());
      log.warn(`join refused from ${who}: token ${r.refused}${r.tokenId ? ` (${r.tokenId})` : ""}`);
      return c.json({ error: REFUSED }, 401);
    }
    return c.json(
      {
        entity_id: r.entity.id,
        api_key: r.entity.api_key,
        name: r.entity.name,
        domain_id: channel.domainId,
        channel_id: channel.channelId,
        mqtt: site?.mqtt ?? { scheme: "mqtt", port: 1883 },
      },
      201,
    );
  });
}
