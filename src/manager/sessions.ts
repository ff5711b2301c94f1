import { hashSecret, newSecret, type Token } from "../core/identity.ts";
import { Channel } from "./events.ts";
import type { Identities } from "./identities.ts";

// The console's sessions and the one-time codes of the sign-in link serve prints. A session id is random (256
// bits), travels only in the HttpOnly cookie and is kept here only as its hash, mapped to the id of the token that
// opened it: the cookie is no token (as a Bearer header it is refused), a session ends when its token is revoked
// or expires, and at the latest SESSION_TTL_MS after sign-in. Both maps live in serve's memory, so a restart signs
// the console out; both are bounded, and nothing is added to either before a token or a code was checked.

export const SESSION_TTL_MS = 12 * 3600_000;
export const MAX_SESSIONS = 1000;
/**
 * Sessions one token may hold: a token signing in again and again ends its own oldest session, never another
 * token's (else one viewer could sign every admin out by filling the map).
 */
export const MAX_SESSIONS_PER_TOKEN = 16;
/** How long the link serve prints may be used, once (`serve --login-link-ttl`). */
export const LOGIN_CODE_TTL_MS = 10 * 60_000;
const MAX_CODES = 16;

interface Held {
  tokenId: string;
  expiresAt: number;
}

export interface SessionOf {
  token: Token;
  /** The session's hash: streams opened with it close when it ends. */
  key: string;
  expiresAt: number;
}

export class Sessions {
  /** By the hash of the session id, oldest first (the first to go when the map is full). */
  private sessions = new Map<string, Held>();
  private codes = new Map<string, Held>();
  /** Sessions signed out (by their hash): their streams close. */
  readonly ended = new Channel<string>();

  constructor(
    private ids: Identities,
    private now = Date.now,
  ) {
    ids.tokenRevoked.subscribe((tokenId) => {
      for (const [k, s] of this.sessions) if (s.tokenId === tokenId) this.end(k);
      for (const [k, c] of this.codes) if (c.tokenId === tokenId) this.codes.delete(k);
    });
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session for a token already checked; its id, for the cookie. */
  open(token: Token): string {
    this.sweep(this.sessions);
    const own = [...this.sessions].filter(([, s]) => s.tokenId === token.id).map(([k]) => k);
    for (const k of own.slice(0, Math.max(0, own.length - MAX_SESSIONS_PER_TOKEN + 1))) this.end(k);
    while (this.sessions.size >= MAX_SESSIONS) this.end(this.sessions.keys().next().value!);
    const id = newSecret();
    const expiry = token.expires_at ? Date.parse(token.expires_at) : Number.POSITIVE_INFINITY;
    this.sessions.set(hashSecret(id), { tokenId: token.id, expiresAt: Math.min(this.now() + SESSION_TTL_MS, expiry) });
    return id;
  }

  /** The session a cookie names, while it and its token are valid. */
  resolve(id: string): SessionOf | undefined {
    const key = hashSecret(id);
    const s = this.sessions.get(key);
    if (!s) return undefined;
    const token = s.expiresAt > this.now() ? this.ids.tokenById(s.tokenId) : undefined;
    if (!token) {
      this.end(key);
      return undefined;
    }
    return { token, key, expiresAt: s.expiresAt };
  }

  /** Signs a session out. */
  close(id: string): void {
    this.end(hashSecret(id));
  }

  /** A one-time sign-in code for a token, valid `ttlMs`; kept only as its hash. */
  mintCode(token: Token, ttlMs = LOGIN_CODE_TTL_MS): string {
    this.sweep(this.codes);
    while (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value!);
    const code = newSecret();
    this.codes.set(hashSecret(code), { tokenId: token.id, expiresAt: this.now() + ttlMs });
    return code;
  }

  /** The token a code signs in as; the code is spent whether or not it was still valid. */
  redeem(code: string): Token | undefined {
    const key = hashSecret(code);
    const c = this.codes.get(key);
    this.codes.delete(key);
    return c && c.expiresAt > this.now() ? this.ids.tokenById(c.tokenId) : undefined;
  }

  private end(key: string): void {
    if (this.sessions.delete(key)) this.ended.publish(key);
  }

  private sweep(map: Map<string, Held>): void {
    const now = this.now();
    for (const [k, v] of map) {
      if (v.expiresAt > now) continue;
      if (map === this.sessions) this.end(k);
      else map.delete(k);
    }
  }
}
