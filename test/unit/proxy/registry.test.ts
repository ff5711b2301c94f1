import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ociDigest } from "../../../src/core/digest.ts";
import { inward, leadsInward } from "../../../src/proxy/http.ts";
import { RegistryClient, RegistryError } from "../../../src/proxy/registry.ts";

// The registry client against real HTTP servers on loopback: a registry behind basic auth whose blobs redirect to
// a store on another port, as registries backed by object storage do.

const module = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
const digest = ociDigest(module);
const seen: { at: string; auth: string | null }[] = [];
const store = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(req) {
    seen.push({ at: "store", auth: req.headers.get("authorization") });
    return new Response(module);
  },
});
const basic = `Basic ${btoa("alice:s3cret")}`;
const registry = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(req) {
    const path = new URL(req.url).pathname;
    seen.push({ at: path, auth: req.headers.get("authorization") });
    if (req.headers.get("authorization") !== basic)
      return new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="r"' } });
    if (path === "/v2/a/m/manifests/v1")
      return Response.json({
        schemaVersion: 2,
        layers: [{ mediaType: "application/wasm", digest, size: module.length }],
      });
    if (path === `/v2/a/m/blobs/${digest}`)
      return new Response("", { status: 307, headers: { location: `http://127.0.0.1:${store.port}/blob` } });
    return new Response("", { status: 404 });
  },
});
afterAll(() => {
  store.stop(true);
  registry.stop(true);
});
const host = `127.0.0.1:${registry.port}`;

test("credentials go to their registry only, and not along a redirect to another origin", async () => {
  seen.length = 0;
  const c = new RegistryClient({ credentials: { username: "alice", password: "s3cret", hosts: [host] } });
  const r = await c.pull(`${host}/a/m:v1`);
  expect(r.digest).toBe(digest);
  expect(seen.find((s) => s.at === "store")).toEqual({ at: "store", auth: null });
  expect(seen.some((s) => s.auth === basic)).toBe(true);
});

test("credentials for another host are not sent: a clear error, and the registry never sees them", async () => {
  seen.length = 0;
  const c = new RegistryClient({ credentials: { username: "alice", password: "s3cret", hosts: ["reg.example:5000"] } });
  const e = await c.pull(`${host}/a/m:v1`).catch((x) => x);
  expect(e).toBeInstanceOf(RegistryError);
  expect(e.safe).toBe("the registry asks for credentials this proxy has none for");
  expect(e.message).toContain(host); // the operator's log and the CLI say which registry
  expect(seen.filter((s) => s.auth)).toEqual([]);
});

test("a module over the bound is refused before its blob is asked for", async () => {
  seen.length = 0;
  const c = new RegistryClient({
    credentials: { username: "alice", password: "s3cret", hosts: [host] },
    maxModuleBytes: 4,
  });
  const e = await c.pull(`${host}/a/m:v1`).catch((x) => x);
  expect(e.safe).toBe("the module is 8 bytes, more than this proxy's limit of 4");
  expect(seen.some((s) => s.at.includes("/blobs/"))).toBe(false);
});

test("the blob cache keeps its bound on disk, the oldest blobs out first", async () => {
  const dir = mkdtempSync(join(tmpdir(), "blobs-"));
  mkdirSync(join(dir, "blobs"));
  const old = `sha256-${"1".repeat(64)}`;
  writeFileSync(join(dir, "blobs", old), new Uint8Array(10));
  utimesSync(join(dir, "blobs", old), 1, 1);
  const c = new RegistryClient({
    credentials: { username: "alice", password: "s3cret", hosts: [host] },
    cacheDir: dir,
    cacheMaxBytes: 12,
  });
  await c.pull(`${host}/a/m:v1`);
  expect(readdirSync(join(dir, "blobs"))).toEqual([digest.replace(":", "-")]);
  // The default bound is two GiB, not a 32-bit overflow that empties the cache at every write.
  const fresh = mkdtempSync(join(tmpdir(), "blobs-"));
  const d = new RegistryClient({
    credentials: { username: "alice", password: "s3cret", hosts: [host] },
    cacheDir: fresh,
  });
  await d.pull(`${host}/a/m:v1`);
  expect(readdirSync(join(fresh, "blobs"))).toHaveLength(1);
});

test("a blob cache that cannot be written (a full or read-only disk) leaves the blob uncached; the module is still pulled", async () => {
  const dir = mkdtempSync(join(tmpdir(), "blobs-"));
  writeFileSync(join(dir, "blobs"), "a file where the cache's directory would go"); // every write under it fails
  const c = new RegistryClient({
    credentials: { username: "alice", password: "s3cret", hosts: [host] },
    cacheDir: dir,
  });
  const m = await c.pull(`${host}/a/m:v1`);
  expect(m.bytes.length).toBe(8);
});

test("a redirect may not lead into the gateway's machine or network, however the address is written", () => {
  for (const h of [
    "127.0.0.1",
    "localhost",
    "a.localhost",
    "169.254.169.254",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "[::1]",
    "[fe80::1]",
    "[fd00::1]",
    new URL("http://[::ffff:169.254.169.254]/").hostname,
    new URL("http://2852039166/").hostname, // 169.254.169.254 as one number
    new URL("http://0x7f.1/").hostname,
    "100.100.100.200", // a cloud's metadata service in carrier-grade NAT space
    new URL("http://[64:ff9b::a9fe:a9fe]/").hostname, // 169.254.169.254 behind NAT64
  ])
    expect({ h, inward: inward(h) }).toEqual({ h, inward: true });
  for (const h of [
    "registry.example",
    "8.8.8.8",
    "172.32.0.1",
    "100.128.0.1",
    "[64:ff9b::808:808]",
    "[2001:db8::1]",
    "cdn.docker.io",
    "fcdn.example",
  ])
    expect({ h, inward: inward(h) }).toEqual({ h, inward: false });
});

test("a redirect's host name is inward when any address it resolves to is; an address is judged as written", async () => {
  const dns: Record<string, string[]> = {
    "blobs.example": ["203.0.113.7", "10.0.0.5"],
    "metadata.example": ["169.254.169.254"],
    "cdn.example": ["203.0.113.8", "2001:db8::8"],
  };
  const resolve = async (h: string) => {
    const found = dns[h];
    if (!found) throw new Error(`ENOTFOUND ${h}`);
    return found;
  };
  expect(await leadsInward("blobs.example", resolve)).toBe(true);
  expect(await leadsInward("metadata.example", resolve)).toBe(true);
  expect(await leadsInward("cdn.example", resolve)).toBe(false);
  expect(await leadsInward("nowhere.example", resolve)).toBe(false); // fetch cannot reach it either
  expect(await leadsInward("localhost", resolve)).toBe(true);
  expect(await leadsInward("8.8.8.8", resolve)).toBe(false);
  // The system's resolver: localhost's name is inward without asking it, and a loopback address as written too.
  expect(await leadsInward("127.0.0.1")).toBe(true);
});
