import { z } from "zod";
import { sha256Hex } from "./digest.ts";

// Who may talk to the manager. REST clients hold tokens with a role; MQTT participants (the manager, the OCI
// proxy, proplets) are entities whose username is their id and whose password is their API key, as upstream.
// Secrets are random (256 bits), shown once, and stored only as their sha256: they are long random strings, so a
// fast hash cannot be brute-forced, and a lookup by hash compares no secret byte by byte.

export const Role = z.enum(["admin", "viewer"]);
export type Role = z.infer<typeof Role>;

export const EntityKind = z.enum(["manager", "proxy", "proplet"]);
export type EntityKind = z.infer<typeof EntityKind>;

/** A stored token's role: a REST role, or `join` (a join token, core/join.ts: never valid on REST). */
export const TokenRole = z.enum(["admin", "viewer", "join"]);

/** A stored REST token: its secret only as a hash. */
export const Token = z.object({
  id: z.string(),
  name: z.string(),
  role: TokenRole,
  hash: z.string(),
  created_at: z.string(),
  revoked_at: z.string().optional(),
  /** Past this instant the token is refused (401, "expired"); none: it lasts until revoked. */
  expires_at: z.string().optional(),
  /** A join token's: proplets it made so far, how many it may make, the name it gives, the entities it made. */
  uses: z.number().int().optional(),
  max_uses: z.number().int().optional(),
  proplet_name: z.string().optional(),
  joined: z.array(z.string()).optional(),
});
export type Token = z.infer<typeof Token>;

/**
 * Labels the operator sets on a proplet's identity (`proplets add --label`): what a task's `requirements` may rely
 * on, unlike the labels a proplet announces about itself (core/requirements.ts). Keys and values as requirements'.
 */
export const Labels = z
  .record(
    z
      .string()
      .min(1)
      .max(128)
      .regex(/^[\w./-]+$/, "label keys are letters, digits and . _ / - only"),
    z.string().max(256),
  )
  .refine((l) => Object.keys(l).length <= 64, "at most 64 labels");
export type Labels = z.infer<typeof Labels>;

/** A stored MQTT identity: its API key only as a hash. */
export const Entity = z.object({
  id: z.string(),
  kind: EntityKind,
  name: z.string(),
  key_hash: z.string(),
  created_at: z.string(),
  revoked_at: z.string().optional(),
  /** A proplet's labels set by the operator. */
  labels: Labels.optional(),
});
export type Entity = z.infer<typeof Entity>;

/** Names and ids are segments of REST and console addresses: `.` and `..` would step out of theirs. */
const notPathStep = (v: string) => v !== "." && v !== "..";

/** A name an operator gives (an identity, a token, a proplet joining): also what join.ts takes. */
export const NAME = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(/^[\w.@:-]+$/, "letters, digits and . _ @ : - only")
  .refine(notPathStep, "may not be . or .. (a step in an address)");

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** Ten years: a lifetime past it is a typo, not a plan. */
export const MAX_TTL_S = 3650 * 86400;

/** A token's lifetime in seconds, from "90s", "30m", "12h", "7d" (or a number of seconds); undefined if not one. */
export function ttlSeconds(v: string | number): number | undefined {
  const m = typeof v === "number" ? [String(v), String(v), "s"] : /^\s*(\d+)\s*([smhd]?)\s*$/.exec(v);
  if (!m || !/^\d+$/.test(m[1]!)) return undefined;
  const s = Number(m[1]) * TTL_UNITS[m[2] || "s"]!;
  return s >= 1 && s <= MAX_TTL_S ? s : undefined;
}

const Ttl = z.union([z.string().max(20), z.number()]).transform((v, ctx) => {
  const s = ttlSeconds(v);
  if (s === undefined) {
    ctx.addIssue({ code: "custom", message: "a duration such as 90s, 30m, 12h or 7d (at most 3650d)" });
    return z.NEVER;
  }
  return s;
});

/** `ttl`: the token expires that long after it is made; without it, it lasts until revoked. */
/**
 * Ours: with the console's cookie, an admin token typed again before making what outlives the session (a token,
 * an identity, a join token). Cookies ignore ports, so any service on the gateway's host receives the session.
 */
export const ConfirmToken = z.string().min(1).max(512);

export const TokenCreate = z.object({
  name: NAME.optional(),
  role: Role.default("viewer"),
  ttl: Ttl.optional(),
  confirm_token: ConfirmToken.optional(),
});
export type TokenCreate = z.infer<typeof TokenCreate>;

/** Whether a token is past its `expires_at` at `now` (ms). */
export const tokenExpired = (t: Token, now = Date.now()): boolean =>
  t.expires_at !== undefined && Date.parse(t.expires_at) <= now;

/**
 * `POST /session`: the console signs in with a token (pasted) or with the one-time code of the link serve prints;
 * the cookie it gets holds a session id, never the token. Both are a few dozen characters: the body is tiny.
 */
export const SessionCreate = z
  .strictObject({ token: z.string().min(1).max(512).optional(), code: z.string().min(1).max(128).optional() })
  .refine((b) => (b.token === undefined) !== (b.code === undefined), "give either token or code");

/** A UUID, the shape of the ids the manager makes: a name of that shape would read as another proplet's id. */
const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const EntityCreate = z
  .object({
    kind: EntityKind,
    /** A proplet's name is the proplet's name everywhere (manager/proplets.ts): unique per site. */
    name: NAME.optional(),
    /** Upstream clients may bring their own id (a UUID); else one is made. */
    id: z
      .string()
      .regex(/^[\w.-]{1,100}$/, "letters, digits and . _ - only (at most 100)")
      .refine(notPathStep, "may not be . or .. (a step in an address)")
      .optional(),
    labels: Labels.optional(),
    confirm_token: ConfirmToken.optional(),
  })
  .refine((e) => !e.labels || e.kind === "proplet", {
    path: ["labels"],
    message: "only a proplet's identity carries labels",
  })
  .refine((e) => e.name === undefined || e.name === e.id || !UUID_SHAPE.test(e.name), {
    path: ["name"],
    message: "looks like an id (a UUID): give a name such as edge-1",
  });
export type EntityCreate = z.infer<typeof EntityCreate>;

/** `PUT /entities/{id}/labels`: a proplet's labels, replaced whole. */
export const LabelsUpdate = z.object({ labels: Labels });

/** What the API shows of a token: never its hash. */
export function tokenView(t: Token): Omit<Token, "hash"> {
  const { hash: _h, ...rest } = t;
  return rest;
}

export function entityView(e: Entity): Omit<Entity, "key_hash"> {
  const { key_hash: _h, ...rest } = e;
  return rest;
}

/** 256 random bits, base64url. */
export function newSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
}

/** A REST token as the client holds it: a recognisable prefix and the secret. */
export function newTokenText(): string {
  return `ppt_${newSecret()}`;
}

export const hashSecret = (secret: string): string => sha256Hex(secret);
