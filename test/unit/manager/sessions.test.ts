import { describe, expect, test } from "bun:test";
import { Attempts } from "../../../src/core/attempts.ts";
import { ttlSeconds } from "../../../src/core/identity.ts";
import { Identities } from "../../../src/manager/identities.ts";
import {
  LOGIN_CODE_TTL_MS,
  MAX_SESSIONS,
  MAX_SESSIONS_PER_TOKEN,
  SESSION_TTL_MS,
  Sessions,
} from "../../../src/manager/sessions.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";

// Console sessions, sign-in codes and token lifetimes on a clock the test turns: what expires, what is spent
// once, what a revocation ends, and that the maps stay bounded.

function setup() {
  let now = Date.parse("2026-01-01T00:00:00Z");
  const clock = () => now;
  const ids = new Identities(openSqlite(":memory:"), {}, clock);
  const sessions = new Sessions(ids, clock);
  return { ids, sessions, advance: (ms: number) => (now += ms) };
}

describe("sessions and sign-in codes", () => {
  test("a code signs in once, and not after LOGIN_CODE_TTL_MS", async () => {
    const { ids, sessions, advance } = setup();
    const admin = ids.verifyToken((await ids.createToken({ role: "admin", name: "a" })).token)!;
    const code = sessions.mintCode(admin);
    expect(sessions.redeem(code)?.id).toBe(admin.id);
    expect(sessions.redeem(code)).toBeUndefined();
    const late = sessions.mintCode(admin);
    advance(LOGIN_CODE_TTL_MS + 1);
    expect(sessions.redeem(late)).toBeUndefined();
  });

  test("a session ends with its token's revocation, its token's expiry, or SESSION_TTL_MS; the ended channel says so", async () => {
    const { ids, sessions, advance } = setup();
    const ended: string[] = [];
    sessions.ended.subscribe((k) => ended.push(k));
    const made = await ids.createToken({ role: "viewer", name: "v" });
    const v = ids.verifyToken(made.token)!;
    const a = sessions.open(v);
    expect(sessions.resolve(a)?.token.id).toBe(v.id);
    await ids.revokeToken(v.id);
    expect(sessions.resolve(a)).toBeUndefined();
    await Bun.sleep(0);
    expect(ended.length).toBe(1);

    const brief = ids.verifyToken((await ids.createToken({ role: "viewer", ttl: 60 })).token)!;
    const b = sessions.open(brief);
    advance(59_000);
    expect(sessions.resolve(b)).toBeDefined();
    advance(2000);
    expect(sessions.resolve(b)).toBeUndefined();

    const long = ids.verifyToken((await ids.createToken({ role: "admin" })).token)!;
    const c = sessions.open(long);
    advance(SESSION_TTL_MS + 1);
    expect(sessions.resolve(c)).toBeUndefined();
  });

  test("at most MAX_SESSIONS_PER_TOKEN a token: a viewer signing in again and again ends only its own oldest", async () => {
    const { ids, sessions } = setup();
    const admin = ids.verifyToken((await ids.createToken({ role: "admin" })).token)!;
    const viewer = ids.verifyToken((await ids.createToken({ role: "viewer" })).token)!;
    const admins = sessions.open(admin);
    const first = sessions.open(viewer);
    for (let i = 0; i < MAX_SESSIONS + 1; i++) sessions.open(viewer);
    expect(sessions.size).toBe(MAX_SESSIONS_PER_TOKEN + 1);
    expect(sessions.resolve(admins)?.token.id).toBe(admin.id);
    expect(sessions.resolve(first)).toBeUndefined();
  });

  test("at most MAX_SESSIONS sessions in all: the oldest goes first", async () => {
    const { ids, sessions } = setup();
    const tokens = [];
    for (let i = 0; i < Math.ceil(MAX_SESSIONS / MAX_SESSIONS_PER_TOKEN) + 1; i++)
      tokens.push(ids.verifyToken((await ids.createToken({ role: "viewer" })).token)!);
    const first = sessions.open(tokens[0]!);
    for (const t of tokens) for (let i = 0; i < MAX_SESSIONS_PER_TOKEN; i++) sessions.open(t);
    expect(sessions.size).toBe(MAX_SESSIONS);
    expect(sessions.resolve(first)).toBeUndefined();
  });

  test("an expired token is told apart from an unknown one; hasAdmin counts only live admins", async () => {
    const { ids, advance } = setup();
    const made = await ids.createToken({ role: "admin", name: "soon", ttl: 1 });
    expect(made.expires_at).toBe("2026-01-01T00:00:01.000Z");
    expect(ids.hasAdmin()).toBe(true);
    advance(1000);
    expect(ids.checkToken(made.token)).toEqual({ expired: expect.objectContaining({ name: "soon" }) });
    expect(ids.verifyToken(made.token)).toBeUndefined();
    expect(ids.checkToken("ppt_unknown")).toBeUndefined();
    expect(ids.hasAdmin()).toBe(false);
  });

  test("lifetimes: 90s, 30m, 12h, 7d or seconds; nonsense and zero refused", () => {
    expect([ttlSeconds("90s"), ttlSeconds("30m"), ttlSeconds("12h"), ttlSeconds("7d"), ttlSeconds(5)]).toEqual([
      90, 1800, 43200, 604800, 5,
    ]);
    for (const bad of ["", "0", "1w", "-1h", "1.5h", "3651d", 0, 1.5]) expect(ttlSeconds(bad)).toBeUndefined();
  });

  test("failed attempts: per key and in all, in windows; the keys kept are bounded", () => {
    const a = new Attempts({ perKey: 3, total: 5, windowMs: 1000, maxKeys: 2 });
    for (let i = 0; i < 3; i++) a.failed("x", 0);
    expect(a.blocked("x", 10)).toBe(990);
    expect(a.blocked("y", 10)).toBe(0);
    a.failed("y", 10);
    a.failed("z", 10); // past maxKeys: counted with the other overflow keys
    expect(a.blocked("w", 10)).toBe(990); // total 5 reached
    expect(a.blocked("x", 1000)).toBe(0); // the window turned
    // Past the ceiling, an address that has not failed may still try: many failing addresses lock out only
    // themselves (a global lockout was a denial of sign-in and joins for everyone).
    const b = new Attempts({ perKey: 3, total: 4, windowMs: 1000, maxKeys: 10 });
    for (const k of ["p", "q", "r", "s"]) b.failed(k, 0);
    expect(["p", "s", "admin"].map((k) => b.blocked(k, 10))).toEqual([990, 990, 0]);
  });
});
