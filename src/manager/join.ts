import { conflict, notFound } from "../core/errors.ts";
import { hashSecret, newSecret, type Token, tokenExpired } from "../core/identity.ts";
import { formatJoinToken, type JoinTokenCreate, parseJoinToken } from "../core/join.ts";
import { nowIso } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Identities } from "./identities.ts";

const log = tag("manager");

// Join tokens (core/join.ts): made by an admin, redeemed by a new proplet for a proplet identity of its own. They
// are kept with the REST tokens (role `join`, so every backend and backup keeps them) but never authenticate a
// request (identities.ts leaves them out). A token expires, has a number of uses (one by default), and can be
// revoked; redeeming spends a use before anything else is awaited, so two proplets cannot share a single use.

export interface JoinTokenView {
  id: string;
  proplet_name?: string;
  created_at: string;
  expires_at?: string;
  revoked_at?: string;
  uses: number;
  max_uses: number;
  /** The entity ids of the proplets that joined with it. */
  joined: string[];
}

const view = (t: Token): JoinTokenView => ({
  id: t.id,
  ...(t.proplet_name ? { proplet_name: t.proplet_name } : {}),
  created_at: t.created_at,
  ...(t.expires_at ? { expires_at: t.expires_at } : {}),
  ...(t.revoked_at ? { revoked_at: t.revoked_at } : {}),
  uses: t.uses ?? 0,
  max_uses: t.max_uses ?? 1,
  joined: t.joined ?? [],
});

/** Why a redemption was refused: for serve's log only (the caller is told none of it). */
export type JoinRefusal = "malformed" | "unknown" | "revoked" | "expired" | "used up";

export class JoinTokens {
  /** Token ids by the hash of their secret. */
  private byHash = new Map<string, string>();

  constructor(
    private store: Storage,
    private identities: Identities,
    private now = Date.now,
  ) {
    for (const t of store.tokens.all()) if (t.role === "join") this.byHash.set(t.hash, t.id);
  }

  /** A new token; its text (with the CA's hash, when given) is returned this once. */
  async create(input: JoinTokenCreate, caHash?: string): Promise<JoinTokenView & { token: string; ca_hash?: string }> {
    // A name someone holds would make every join with the token fail (409): refused now, naming the holder.
    const taken = input.name ? this.identities.nameTaken(input.name) : undefined;
    if (taken) throw conflict(`${taken}: a proplet joining with this token could not take it`);
    const secret = newSecret();
    const t: Token = {
      id: crypto.randomUUID(),
      name: `join-${nowIso().slice(0, 10)}`,
      role: "join",
      hash: hashSecret(secret),
      created_at: nowIso(),
      expires_at: new Date(this.now() + input.ttl * 1000).toISOString(),
      uses: 0,
      max_uses: input.uses,
      ...(input.name ? { proplet_name: input.name } : {}),
      joined: [],
    };
    this.store.tokens.create(t);
    await this.store.durable();
    this.byHash.set(t.hash, t.id);
    log.info(
      `join token ${t.id} created: ${input.uses} use(s), expires ${t.expires_at}${caHash ? "" : ", no CA pin (no TLS)"}`,
    );
    return { ...view(t), token: formatJoinToken({ secret, caHash }), ...(caHash ? { ca_hash: caHash } : {}) };
  }

  list(): JoinTokenView[] {
    return this.store.tokens
      .all()
      .filter((t) => t.role === "join")
      .map(view);
  }

  async revoke(id: string): Promise<void> {
    const t = this.store.tokens.get(id);
    if (t?.role !== "join") throw notFound(`join token ${id} not found`);
    if (t.revoked_at) return;
    this.store.tokens.update({ ...t, revoked_at: nowIso() });
    await this.store.durable();
    log.info(`join token ${id} revoked`);
  }

  /** A proplet identity for a valid token (its use spent), or why not. */
  async redeem(text: string) {
    const parsed = parseJoinToken(text);
    if (!parsed) return { refused: "malformed" as JoinRefusal };
    const id = this.byHash.get(hashSecret(parsed.secret));
    const t = id === undefined ? undefined : this.store.tokens.get(id);
    const refusal: JoinRefusal | undefined = !t
      ? "unknown"
      : t.revoked_at
        ? "revoked"
        : tokenExpired(t, this.now())
          ? "expired"
          : (t.uses ?? 0) >= (t.max_uses ?? 1)
            ? "used up"
            : undefined;
    if (refusal || !t) return { refused: refusal ?? ("unknown" as JoinRefusal), tokenId: t?.id };
    // Spent now, before any await: a second redemption of the last use sees it gone.
    const spent = { ...t, uses: (t.uses ?? 0) + 1 };
    this.store.tokens.update(spent);
    let e: Awaited<ReturnType<Identities["createEntity"]>>;
    try {
      e = await this.identities.createEntity({
        kind: "proplet",
        ...(t.proplet_name ? { name: t.proplet_name } : {}),
      });
    } catch (err) {
      // Not the token's fault (its name was taken meanwhile, the store failed): the use is given back.
      const current = this.store.tokens.get(t.id);
      if (current) this.store.tokens.update({ ...current, uses: Math.max(0, (current.uses ?? 1) - 1) });
      await this.store.durable();
      throw err;
    }
    const current = this.store.tokens.get(t.id) ?? spent;
    this.store.tokens.update({ ...current, joined: [...(current.joined ?? []), e.id] });
    await this.store.durable();
    log.info(`proplet ${e.id} (${e.name}) joined with join token ${t.id}`);
    return { entity: e };
  }
}
