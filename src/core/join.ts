import { z } from "zod";
import { ConfirmToken, NAME, ttlSeconds } from "./identity.ts";

// Join tokens: one line that lets a new proplet fetch its identity (entity id and API key) and the site CA. The
// line is `ppj_<secret>[.<ca hash>]`: the secret (256 bits, stored only as its sha256) and, when serve speaks TLS,
// the sha256 of the site CA's SubjectPublicKeyInfo, as kubeadm's discovery hash. The joining proplet fetches the CA
// without trusting anyone, checks it against that hash, and only then sends the secret, over TLS verified by that
// CA: a server that is not the site's never sees it.

export const JOIN_PREFIX = "ppj_";
/** A join token lives at most this long: it is for joining now, not a standing credential. */
export const MAX_JOIN_TTL_S = 30 * 86400;
export const MAX_JOIN_USES = 1000;

export interface JoinTokenText {
  secret: string;
  /** `sha256:<hex>` of the site CA's public key; none when the site has no TLS. */
  caHash?: string;
}

export function formatJoinToken(t: JoinTokenText): string {
  return `${JOIN_PREFIX}${t.secret}${t.caHash ? `.${t.caHash.replace(/^sha256:/, "")}` : ""}`;
}

/** The parts of a token's text, or undefined when it is not one. */
export function parseJoinToken(text: string): JoinTokenText | undefined {
  const m = /^ppj_([A-Za-z0-9_-]{43})(?:\.([0-9a-f]{64}))?$/.exec(text.trim());
  if (!m) return undefined;
  return { secret: m[1]!, ...(m[2] ? { caHash: `sha256:${m[2]}` } : {}) };
}

/** `POST /join-tokens`: how long it works (default 1h), the name the proplet gets, how many proplets may join. */
export const JoinTokenCreate = z
  .strictObject({
    ttl: z
      .union([z.string().max(20), z.number()])
      .default("1h")
      .transform((v, ctx) => {
        const s = ttlSeconds(v);
        if (s === undefined || s > MAX_JOIN_TTL_S) {
          ctx.addIssue({ code: "custom", message: "a duration such as 30m, 1h or 7d (at most 30d)" });
          return z.NEVER;
        }
        return s;
      }),
    name: NAME.optional(),
    uses: z.number().int().min(1).max(MAX_JOIN_USES).default(1),
    confirm_token: ConfirmToken.optional(),
  })
  .refine((b) => !(b.name && b.uses > 1), { message: "a name is for one proplet: give uses 1", path: ["name"] });
export type JoinTokenCreate = z.infer<typeof JoinTokenCreate>;

/** `POST /join`: the token, and nothing else (the body is small: serve reads 4 KiB at most before a token). */
export const JoinRedeem = z.strictObject({ token: z.string().min(1).max(200) });

/** Where the joined proplet finds the broker: an external one's URL, or the embedded one's scheme and port. */
export const JoinMqtt = z.union([
  z.object({ url: z.string() }),
  z.object({ scheme: z.enum(["mqtt", "mqtts"]), port: z.number().int() }),
]);
export type JoinMqtt = z.infer<typeof JoinMqtt>;

/** What a redemption answers: the identity (its key shown this once) and where to connect. */
export const Joined = z.object({
  entity_id: z.string(),
  api_key: z.string(),
  name: z.string(),
  domain_id: z.string(),
  channel_id: z.string(),
  mqtt: JoinMqtt,
});
export type Joined = z.infer<typeof Joined>;

/** The broker address a joined proplet uses: the external broker's URL, else serve's host (as joined) and port. */
export function joinedMqttAddress(mqtt: JoinMqtt, joinUrl: string): string {
  if ("url" in mqtt) return mqtt.url;
  return `${mqtt.scheme}://${new URL(joinUrl).hostname}:${mqtt.port}`;
}
