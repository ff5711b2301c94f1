import { log } from "../../log.ts";
import type { Identities } from "../identities.ts";
import type { Sessions } from "../sessions.ts";
import type { Owner } from "./auth.ts";

// Who holds the open event streams (`GET /events`, `GET /tasks/{id}/logs?follow=true`): at most `total` at once
// and `perToken` per token (a console's session counts as its token), so clients cannot hold serve's memory by
// the thousand; and each is told to end when its token is revoked, its session signed out, or its token or session
// expires (sse.ts closes it).

export interface StreamLimits {
  /** Open streams in all (503 past it). */
  total: number;
  /** Open streams per token (429 past it). */
  perToken: number;
  /** Bytes queued for one subscriber that is not reading before it is dropped. */
  queueBytes: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { total: 256, perToken: 16, queueBytes: 1 << 20 };

/** setTimeout's longest delay; an expiry further off is checked again when it comes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Held {
  owner: Owner;
  /** Ends the stream, with the reason told to the client. */
  end(reason: string): void;
}

export class Streams {
  private held = new Set<Held>();
  private timers = new Map<Held, ReturnType<typeof setTimeout>>();

  constructor(
    readonly limits: StreamLimits,
    ids?: Identities,
    sessions?: Sessions,
  ) {
    ids?.tokenRevoked.subscribe((id) => this.endWhere((o) => o.tokenId === id, "token revoked"));
    sessions?.ended.subscribe((key) => this.endWhere((o) => o.sessionKey === key, "signed out"));
  }

  get open(): number {
    return this.held.size;
  }

  /** Admits a stream, or says why not (with the status to answer). */
  admit(h: Held): { status: 429 | 503; error: string } | undefined {
    if (this.held.size >= this.limits.total) {
      return { status: 503, error: `serve has ${this.limits.total} streams open, its limit: try again later` };
    }
    const id = h.owner.tokenId;
    if (id !== undefined) {
      let mine = 0;
      for (const x of this.held) if (x.owner.tokenId === id) mine++;
      if (mine >= this.limits.perToken) {
        return { status: 429, error: `this token has ${this.limits.perToken} streams open, its limit: close one` };
      }
    }
    this.held.add(h);
    this.expireAt(h);
    return undefined;
  }

  release(h: Held): void {
    this.held.delete(h);
    clearTimeout(this.timers.get(h));
    this.timers.delete(h);
  }

  private expireAt(h: Held): void {
    const at = h.owner.expiresAt;
    if (at === undefined) return;
    const ms = at - Date.now();
    const timer = setTimeout(
      () => (ms > MAX_TIMER_MS ? this.expireAt(h) : h.end("token or session expired")),
      Math.max(0, Math.min(ms, MAX_TIMER_MS)),
    );
    timer.unref?.();
    this.timers.set(h, timer);
  }

  private endWhere(match: (o: Owner) => boolean, reason: string): void {
    let n = 0;
    for (const h of [...this.held]) {
      if (!match(h.owner)) continue;
      h.end(reason);
      n++;
    }
    if (n) log.info(`closed ${n} open stream(s): ${reason}`);
  }
}
