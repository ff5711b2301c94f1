import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { Turns } from "../../../src/core/turns.ts";
import { realmAllowed } from "../../../src/proxy/auth.ts";
import { fetchFollowing, RegistryError } from "../../../src/proxy/http.ts";
import { cli, tempDir } from "../../helpers.ts";

// The proxy's HTTP rules against real servers: a registry that looks outward (a name resolved by the test, reached
// over a unix socket) may not send the proxy inward by a redirect nor by a bearer realm; https may not lead down to
// http; a registry that takes the connection and never answers gives its fetch slot back after the headers bound;
// and a registry's slow fetches hold back only its own.

const dns: Record<string, string[]> = {
  "registry.example": ["203.0.113.7"],
  "auth.example": ["203.0.113.9"],
  "sneaky.example": ["203.0.113.10", "10.0.0.5"],
};
const resolve = async (h: string) => {
  const found = dns[h];
  if (!found) throw new Error(`ENOTFOUND ${h}`);
  return found;
};
const none = () => new Headers();

const sock = join(tempDir(), "registry.sock");
const outward = Bun.serve({
  unix: sock,
  fetch(req) {
    const to = new URL(req.url).searchParams.get("to");
    return to ? new Response("", { status: 307, headers: { location: to } }) : new Response("module");
  },
});
const inner: string[] = [];
const inside = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(req) {
    inner.push(req.url);
    return Response.json({ token: "internal" });
  },
});
const silent: Socket[] = [];
const hang = createServer((c) => silent.push(c)); // takes the connection, never answers
await new Promise<void>((r) => hang.listen(0, "127.0.0.1", r));
afterAll(() => {
  outward.stop(true);
  inside.stop(true);
  for (const c of silent) c.destroy();
  hang.close();
});

const follow = (to: string) =>
  fetchFollowing(
    `http://registry.example/v2/x?to=${encodeURIComponent(to)}`,
    { headers: none(), unix: sock } as RequestInit & { headers: Headers },
    { timeoutMs: 5000, resolve },
  ).catch((e) => e);

test("a registry outside may not redirect the proxy inside, by address or by a name that resolves there", async () => {
  for (const to of [
    `http://127.0.0.1:${inside.port}/admin`,
    "http://10.1.2.3/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://sneaky.example/x",
  ]) {
    const e = await follow(to);
    expect({ to, e: e instanceof RegistryError ? e.safe : String(e) }).toEqual({ to, e: "redirect refused" });
  }
  expect(inner).toEqual([]);
  // Outward it is followed (here to the same registry, which answers the module).
  const ok = await follow("http://registry.example/v2/blob");
  expect(ok).toBeInstanceOf(Response);
  expect(await (ok as Response).text()).toBe("module");
});

test("a bearer realm inside the gateway's network is refused unless the registry is there itself", async () => {
  for (const realm of [
    `http://127.0.0.1:${inside.port}/token?hit=realm`,
    "http://sneaky.example/t",
    "http://[::1]/t",
  ]) {
    const e = await realmAllowed("registry.example", new URL(realm), resolve).catch((x) => x);
    expect({ realm, e: e instanceof RegistryError ? e.safe : e }).toEqual({
      realm,
      e: "bad bearer realm: an address inside",
    });
  }
  expect(await realmAllowed("registry.example:5000", new URL("https://auth.example/token"), resolve)).toBeUndefined();
  // A registry on this machine may keep its token service here too.
  expect(await realmAllowed("127.0.0.1:5000", new URL("http://127.0.0.1:5001/token"), resolve)).toBeUndefined();
  expect(inner).toEqual([]);
});

test("an https registry may not redirect down to http", async () => {
  const dir = tempDir();
  expect(cli(["certs", "create", "--host", "127.0.0.1", "--dir", dir]).code).toBe(0);
  const tls = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    tls: { cert: readFileSync(join(dir, "server.pem"), "utf8"), key: readFileSync(join(dir, "server.key"), "utf8") },
    fetch: () => new Response("", { status: 302, headers: { location: `http://127.0.0.1:${inside.port}/blob` } }),
  });
  try {
    const e = await fetchFollowing(
      `https://127.0.0.1:${tls.port}/v2/x/blobs/y`,
      { headers: none(), tls: { ca: readFileSync(join(dir, "ca.pem"), "utf8") } } as RequestInit & {
        headers: Headers;
      },
      { timeoutMs: 5000 },
    ).catch((x) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect(e.message).toContain("from https to http");
    expect(inner).toEqual([]);
  } finally {
    tls.stop(true);
  }
});

test("a registry that never answers gives up after the headers bound, not the whole request's", async () => {
  const t0 = performance.now();
  const e = await fetchFollowing(
    `http://127.0.0.1:${(hang.address() as { port: number }).port}/v2/`,
    { headers: none() },
    { timeoutMs: 20_000, headersMs: 300 },
  ).catch((x) => x);
  const ms = performance.now() - t0;
  expect(e.name).toBe("TimeoutError");
  expect(ms).toBeGreaterThanOrEqual(290);
  expect(ms).toBeLessThan(3000);
});

test("fetch turns: at most `perHost` from one registry; a waiting fetch of another registry passes a stuck one", async () => {
  const turns = new Turns(4, 2);
  const order: string[] = [];
  const take = (host: string, name: string) => turns.take(host).then(() => order.push(name));
  await take("slow", "s1");
  await take("slow", "s2");
  const s3 = take("slow", "s3"); // waits: its registry has two running
  await take("good", "g1"); // starts at once beside them
  expect(order).toEqual(["s1", "s2", "g1"]);
  expect(turns.size).toEqual({ running: 3, waiting: 1 });
  await take("other", "o1"); // the fourth and last slot
  const g2 = take("good", "g2"); // waits for any slot
  turns.give("good");
  await g2; // the freed slot goes to the first waiting fetch whose registry has room: not s3
  expect(order).toEqual(["s1", "s2", "g1", "o1", "g2"]);
  turns.give("slow");
  await s3;
  expect(order.at(-1)).toBe("s3");
  expect(turns.size).toEqual({ running: 4, waiting: 0 });
});
