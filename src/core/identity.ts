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

/** A stored REST token: its secret only as a hash. */
export const Token = z.object({
  id: z.string(),
  name: z.string(),
  role: Role,
  hash: z.string(),
  created_at: z.string(),
  revoked_at: z.string().optional(),
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

const NAME = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(/^[\w.@:-]+$/, "letters, digits and . _ @ : - only");

export const TokenCreate = z.object({ name: NAME.optional(), role: Role.default("viewer") });
export type TokenCreate = z.infer<typeof TokenCreate>;

/** `POST /session`: the console signs in with a token, which then travels in an HttpOnly cookie. */
export const SessionCreate = z.object({ token: z.string().min(1).max(512) });

export const EntityCreate = z
  .object({
    kind: EntityKind,
    name: NAME.optional(),
    /** Upstream clients may bring their own id (a UUID); else one is made. */
    id: z
      .string()
      .regex(/^[\w.-]{1,100}$/, "letters, digits and . _ - only (at most 100)")
      .optional(),
    labels: Labels.optional(),
  })
  .refine((e) => !e.labels || e.kind === "proplet", {
    path: ["labels"],
    message: "only a proplet's identity carries labels",
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
