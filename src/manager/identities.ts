import { timingSafeEqual } from "node:crypto";
import { conflict, invalid, notFound } from "../core/errors.ts";
import {
  type Entity,
  type EntityCreate,
  type EntityKind,
  entityView,
  hashSecret,
  type Labels,
  newSecret,
  newTokenText,
  type Token,
  type TokenCreate,
  tokenExpired,
  tokenView,
} from "../core/identity.ts";
import { SELF_TRUSTED, UNVOUCHED, type Vouched } from "../core/requirements.ts";
import { nowIso } from "../core/time.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import { Channel } from "./events.ts";

const log = tag("manager");

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

// Identities: REST tokens (admin, viewer) and MQTT entities (manager, proxy, proplet). Both are kept in memory,
// indexed by the hash of their secret, so every request and every MQTT CONNECT is checked without a storage read;
// a revocation is stored and takes effect at once. serve's own clients (its manager, proxy and local proplet) get
// internal identities: new keys at every start, held in memory only.

export type TokenView = ReturnType<typeof tokenView>;
export type EntityView = ReturnType<typeof entityView>;

/** What a presented token is: valid, known but past its expiry, or unknown (or revoked). */
export type TokenCheck = { ok: Token } | { expired: Token } | undefined;

export class Identities {
  private tokensByHash = new Map<string, Token>();
  /** The same live tokens by id: a console session holds a token's id, never its text. */
  private tokensById = new Map<string, Token>();
  private entities = new Map<string, Entity>();
  private internal = new Map<string, { kind: EntityKind; keyHash: string }>();
  /**
   * Entity ids by the hash of their API key, for a key that comes without its id (a proplet's Bearer token on the
   * FL routes): one lookup, as tokens are found, not a walk over a fleet's identities on every bad token.
   */
  private idByKeyHash = new Map<string, string>();
  /** Live entity ids by name (names are unique): a proplet's name is looked up when it registers. */
  private idByName = new Map<string, string>();
  /** Entity ids revoked: the broker disconnects them. */
  readonly revoked = new Channel<string>();
  /** Token ids revoked: their console sessions end and their open streams close. */
  readonly tokenRevoked = new Channel<string>();
  /** Proplet ids whose labels the operator changed: waiting tasks may fit now. */
  readonly labelled = new Channel<string>();
  /** What placement takes as true of each proplet identity (labels the operator set), kept ready per id. */
  private vouchedById = new Map<string, Vouched>();
  /** Identities created: a proplet known already takes its identity's name (manager/proplets.ts). */
  readonly created = new Channel<{ id: string; kind: EntityKind; name: string }>();
  /**
   * What else holds a name or id a new identity would take (the proplet registry, set by the manager): a message
   * saying who, or undefined when both are free.
   */
  private claimedElsewhere: (name: string, id: string) => string | undefined = () => undefined;

  /**
   * `trustPropletLabels`: a proplet's own labels and TEE count towards requirements (`serve --trust-proplet-labels`,
   * and `--no-auth`, where there are no identities to set labels on). `now`: the clock tokens expire by.
   */
  constructor(
    private store: Storage,
    private opts: { trustPropletLabels?: boolean } = {},
    private now = Date.now,
  ) {
    // Join tokens are the join room's (join.ts): never a REST token.
    for (const t of store.tokens.all()) if (!t.revoked_at && t.role !== "join") this.keep(t);
    for (const e of store.entities.all()) {
      this.entities.set(e.id, e);
      if (!e.revoked_at) this.idByKeyHash.set(e.key_hash, e.id);
      this.vouch(e);
      if (!e.revoked_at) this.idByName.set(e.name, e.id);
    }
  }

  private vouch(e: Entity): void {
    const self = this.opts.trustPropletLabels === true;
    if (e.revoked_at || !e.labels) this.vouchedById.delete(e.id);
    else this.vouchedById.set(e.id, Object.freeze({ labels: e.labels, self }));
  }

  /**
   * What placement may take as true of proplet `id`: the labels the operator set on its identity; its own claims
   * only when they are trusted. serve's own local proplet is trusted: its settings are serve's.
   */
  vouched(id: string): Vouched {
    const v = this.vouchedById.get(id);
    if (v) return v;
    if (this.internal.get(id)?.kind === "proplet") return SELF_TRUSTED;
    return this.opts.trustPropletLabels ? SELF_TRUSTED : UNVOUCHED;
  }

  /** `PUT /entities/{id}/labels`: a proplet's labels, replaced whole; placement follows at once. */
  async setLabels(key: string, labels: Labels): Promise<EntityView> {
    const id = this.entityIdOf(key);
    const e = this.entities.get(id);
    if (!e) throw notFound(`entity ${id} not found`);
    if (e.kind !== "proplet") throw invalid("labels: only a proplet's identity carries labels");
    const next: Entity = { ...e, labels };
    this.store.entities.update(next);
    await this.store.durable();
    this.entities.set(id, next);
    this.vouch(next);
    this.labelled.publish(id);
    log.info(
      `proplet identity ${id}: labels ${
        Object.entries(labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(", ") || "none"
      }`,
    );
    return entityView(next);
  }

  private keep(t: Token): void {
    this.tokensByHash.set(t.hash, t);
    this.tokensById.set(t.id, t);
  }

  /**
   * Whether `t` is an admin token that works for good and no other one does: one that expires is no way in to
   * count on (an admin token of 15 s let the only lasting one be revoked, and then itself expired). One that
   * expires itself is revoked freely (a leaked one must go at once, whatever else the site holds).
   */
  private lastAdmin(t: Token): boolean {
    const now = this.now();
    const works = (x: Token) => x.role === "admin" && !x.revoked_at && !tokenExpired(x, now);
    if (!works(t) || t.expires_at) return false;
    for (const x of this.tokensByHash.values()) if (x.id !== t.id && works(x) && !x.expires_at) return false;
    return true;
  }

  /** Whether an admin token that has not expired exists. */
  hasAdmin(): boolean {
    for (const t of this.tokensByHash.values()) if (t.role === "admin" && !tokenExpired(t, this.now())) return true;
    return false;
  }

  /** Creates a token; its text is returned this once and stored only as a hash. */
  async createToken(input: TokenCreate): Promise<TokenView & { token: string }> {
    const text = newTokenText();
    const t: Token = {
      id: crypto.randomUUID(),
      name: input.name ?? `${input.role}-${new Date().toISOString().slice(0, 10)}`,
      role: input.role,
      hash: hashSecret(text),
      created_at: nowIso(),
      ...(input.ttl ? { expires_at: new Date(this.now() + input.ttl * 1000).toISOString() } : {}),
    };
    this.store.tokens.create(t);
    await this.store.durable();
    this.keep(t);
    log.info(`token ${t.id} (${t.name}, ${t.role}) created${t.expires_at ? `, expires ${t.expires_at}` : ""}`);
    return { ...tokenView(t), token: text };
  }

  listTokens(): TokenView[] {
    return this.store.tokens
      .all()
      .filter((t) => t.role !== "join")
      .map(tokenView);
  }

  /**
   * `DELETE /tokens/{id}`: revokes the token `key` names (tokenFor) and returns it, with when it was revoked (an
   * earlier time: it was revoked before). The last admin token that works for good is kept unless `force`:
   * without it no one could change anything over REST or sign in to the console as an admin once the others
   * expire, until serve restarts (it makes a new admin token in its data dir when none is left, admin-token.ts)
   * or a token is minted into its stopped store.
   */
  async revokeToken(key: string, force = false): Promise<TokenView> {
    const t = this.tokenFor(key);
    if (!force && this.lastAdmin(t))
      throw conflict(
        `token ${t.id} (${t.name}) is the last admin token that does not expire: revoked, no one could administer ` +
          "serve once the others expire, until it restarts (it then writes a new admin token into its data dir's " +
          "admin.token); create another first (propeller tokens create --role admin), or revoke it with --force",
      );
    const id = t.id;
    this.tokensByHash.delete(t.hash);
    this.tokensById.delete(t.id);
    // Told even when it was revoked already: whatever still holds it (a session, a stream) lets go.
    this.tokenRevoked.publish(id);
    if (t.revoked_at) return tokenView(t);
    const revoked = { ...t, revoked_at: nowIso() };
    this.store.tokens.update(revoked);
    await this.store.durable();
    log.info(`token ${id} (${t.name}) revoked`);
    return tokenView(revoked);
  }

  /**
   * The token `key` names: its id; else its name (a token that works first); else a unique start of its id (at
   * least 4 characters). A name that is also the start of another token's id is refused as ambiguous: the CLI
   * read a name as an id prefix first, and revoked another token than the one named.
   */
  private tokenFor(key: string): Token {
    const byId = this.store.tokens.get(key);
    if (byId && byId.role !== "join") return byId;
    const named = this.tokenNamed(key);
    const prefixed =
      key.length >= 4 ? this.store.tokens.all().filter((t) => t.role !== "join" && t.id.startsWith(key)) : [];
    const other = prefixed.find((t) => t.id !== named?.id);
    if (named && other)
      throw conflict(
        `${key} is the name of token ${named.id} and the start of token id ${other.id}: give the whole id`,
      );
    if (named) return named;
    if (prefixed.length > 1)
      throw conflict(`token id ${key} is ambiguous (${prefixed.map((t) => t.id).join(", ")}): give more of it`);
    if (prefixed.length === 1) return prefixed[0]!;
    throw notFound(`token ${key} not found`);
  }

  private tokenNamed(name: string): Token | undefined {
    const all = this.store.tokens.all().filter((t) => t.role !== "join" && t.name === name);
    const working = all.filter((t) => !t.revoked_at && !tokenExpired(t, this.now()));
    const pick = working.length > 0 ? working : all;
    if (pick.length > 1)
      throw conflict(`${pick.length} tokens are named ${name}: revoke by id (${pick.map((t) => t.id).join(", ")})`);
    return pick[0];
  }

  /** The token a request presents, if it is known, not revoked and not expired. */
  verifyToken(text: string): Token | undefined {
    const c = this.checkToken(text);
    return c && "ok" in c ? c.ok : undefined;
  }

  /** The token a request presents, told apart: valid, expired (said so in the 401), or unknown. */
  checkToken(text: string): TokenCheck {
    const t = this.tokensByHash.get(hashSecret(text));
    if (!t) return undefined;
    return tokenExpired(t, this.now()) ? { expired: t } : { ok: t };
  }

  /** A live token by its id (a session's), if it is not revoked and not expired. */
  tokenById(id: string): Token | undefined {
    const t = this.tokensById.get(id);
    return t && !tokenExpired(t, this.now()) ? t : undefined;
  }

  setClaimCheck(fn: (name: string, id: string) => string | undefined): void {
    this.claimedElsewhere = fn;
  }

  /**
   * Why `name` and `id` cannot be a new identity's: a name is unique per site (a proplet goes by it wherever an id
   * is taken), and neither may be another identity's or proplet's id or name.
   */
  private claimed(name: string, id: string): string | undefined {
    const holder = this.idByName.get(name);
    if (holder !== undefined && holder !== id)
      return `name ${name} is taken by ${this.entities.get(holder)?.kind} ${holder}`;
    const named = this.idByName.get(id);
    if (named !== undefined && named !== id)
      return `id ${id} is the name of ${this.entities.get(named)?.kind} ${named}`;
    if (name !== id && (this.entities.has(name) || this.internal.has(name)))
      return `name ${name} is another identity's id`;
    return this.claimedElsewhere(name, id);
  }

  /** Why a new identity could not take `name` (a join token for it is refused at once: manager/join.ts). */
  nameTaken(name: string): string | undefined {
    return this.claimed(name, crypto.randomUUID());
  }

  /** A name for an identity created without one: its kind and id, shortened when that is free. */
  private defaultName(kind: EntityKind, id: string): string {
    const short = `${kind}-${id.slice(0, 8)}`;
    return this.claimed(short, id) ? `${kind}-${id}` : short;
  }

  /** Creates an MQTT identity; its API key is returned this once and stored only as a hash. */
  async createEntity(input: EntityCreate): Promise<EntityView & { api_key: string }> {
    const id = input.id ?? crypto.randomUUID();
    if (this.entities.has(id) || this.internal.has(id)) throw conflict(`entity ${id} already exists`);
    const name = input.name ?? this.defaultName(input.kind, id);
    const taken = this.claimed(name, id);
    if (taken) throw conflict(`${taken}: names and ids are unique per site`);
    const key = newSecret();
    const e: Entity = {
      id,
      kind: input.kind,
      name,
      key_hash: hashSecret(key),
      created_at: nowIso(),
      ...(input.labels ? { labels: input.labels } : {}),
    };
    this.store.entities.create(e);
    // Kept before the commit is awaited: a second request meanwhile sees the id and the name taken.
    this.entities.set(id, e);
    this.vouch(e);
    this.idByName.set(name, id);
    await this.store.durable();
    this.idByKeyHash.set(e.key_hash, id);
    log.info(`${e.kind} identity ${id} (${e.name}) created`);
    this.created.publish({ id, kind: e.kind, name: e.name });
    return { ...entityView(e), api_key: key };
  }

  /** The name of a live proplet identity: the name its proplet goes by. */
  propletName(id: string): string | undefined {
    const e = this.entities.get(id);
    return e && e.kind === "proplet" && !e.revoked_at ? e.name : undefined;
  }

  /** The id of the identity `key` names by id or (a live one's) name; `key` itself when none has it (the 404). */
  entityIdOf(key: string): string {
    return this.entities.has(key) ? key : (this.idByName.get(key) ?? key);
  }

  /** The id of the live identity with this name, if any. */
  named(name: string): string | undefined {
    return this.idByName.get(name);
  }

  listEntities(kind?: EntityKind): EntityView[] {
    return [...this.entities.values()].filter((e) => !kind || e.kind === kind).map(entityView);
  }

  /** Revokes an identity: its key stops working and its MQTT connection is closed at once. */
  async revokeEntity(key: string): Promise<void> {
    const id = this.entityIdOf(key);
    const e = this.entities.get(id);
    if (!e) throw notFound(`entity ${id} not found`);
    if (!e.revoked_at) {
      const revoked = { ...e, revoked_at: nowIso() };
      this.store.entities.update(revoked);
      await this.store.durable();
      this.entities.set(id, revoked);
      this.vouch(revoked);
      this.idByKeyHash.delete(e.key_hash);
      if (this.idByName.get(e.name) === id) this.idByName.delete(e.name);
      log.info(`${e.kind} identity ${id} revoked`);
    }
    this.revoked.publish(id);
  }

  /** An identity of serve's own, valid until serve stops; returns its API key. */
  internalIdentity(id: string, kind: EntityKind): string {
    const key = newSecret();
    const keyHash = hashSecret(key);
    this.internal.set(id, { kind, keyHash });
    this.idByKeyHash.set(keyHash, id);
    return key;
  }

  /** The entity an API key belongs to (a proplet calling the FL routes with its key as a Bearer token). */
  entityByKey(key: string): { id: string; kind: EntityKind } | undefined {
    const id = this.idByKeyHash.get(hashSecret(key));
    const kind = id === undefined ? undefined : this.verifyEntity(id, key);
    return id !== undefined && kind ? { id, kind } : undefined;
  }

  /** MQTT CONNECT: the kind of the entity whose id and key these are, if they are valid. */
  verifyEntity(id: string, key: string): EntityKind | undefined {
    const hash = hashSecret(key);
    const own = this.internal.get(id);
    if (own) return same(own.keyHash, hash) ? own.kind : undefined;
    const e = this.entities.get(id);
    return e && !e.revoked_at && same(e.key_hash, hash) ? e.kind : undefined;
  }
}
