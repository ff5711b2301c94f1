import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { endless as endlessBody } from "./endless.ts";
import { FIXTURES, freePort, identity, type Serve, startServe, until } from "./helpers.ts";
import { type Registry, startRegistry } from "./registry.ts";

// The OCI proxy attacks' site (test/attack/proxy.test.ts, proxy-bounds.test.ts): a real serve with registry
// credentials, a provisioned proplet speaking MQTT, a hostile registry and a token thief on loopback (Bun.serve
// here, recording every request), and Debian's docker-registry for the happy path.
// Each test file starts its own site (startProxySite in beforeAll): the bindings below are live, set anew by each.

export const T = "m/default/c/default";
export const MiB = 1 << 20;
export const MAX_MODULE_MB = 8;

export function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

interface Seen {
  path: string;
  auth: string | null;
}

/** A loopback HTTP server that records every request and answers with `route`. */
function recorder(
  route: (path: string, req: Request) => Response | Promise<Response> = () => new Response("no", { status: 404 }),
) {
  const seen: Seen[] = [];
  const srv = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      seen.push({ path, auth: req.headers.get("authorization") });
      return route(path, req);
    },
  });
  return { seen, srv, host: `127.0.0.1:${srv.port}`, port: srv.port! };
}

export const hex = (c: string) => `sha256:${c.repeat(64)}`;
const manifest = (layer: { digest: string; size: number }) =>
  Response.json(
    {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.wasm.config.v0+json", digest: hex("0"), size: 2 },
      layers: [{ mediaType: "application/wasm", ...layer }],
    },
    { headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } },
  );

/** A module two proplets are sent (fixture add.wasm) and its digest. */
const SHARED = new Uint8Array(readFileSync(join(FIXTURES, "add.wasm")));
const SHARED_DIGEST = `sha256:${new Bun.CryptoHasher("sha256").update(SHARED).digest("hex")}`;

/** A 6 MiB blob under the 8 MiB bound, served whole (the proxy checks its digest, not that it is Wasm). */
export const BIG = new Uint8Array(6 * (1 << 20)).fill(0x62);
const BIG_DIGEST = `sha256:${new Bun.CryptoHasher("sha256").update(BIG).digest("hex")}`;

/** Bytes the hostile registry produced for each endless body, as serve pulled them. */
export let produced = new Map<string, number>();
const endless = (path: string, piece: Uint8Array) => endlessBody(produced, path, piece);

export let s: Serve;
export let locked: Registry;
export let hostile: ReturnType<typeof recorder>;
export let thief: ReturnType<typeof recorder>;
export let scanned: ReturnType<typeof recorder>;
export let closedPort: number;
export let attacker: mqtt.MqttClient;
export let answers: Record<string, unknown>[] = [];

export async function startProxySite(): Promise<void> {
  answers = [];
  produced = new Map();
  locked = await startRegistry({ user: "alice", password: "s3cret" });
  thief = recorder((path) =>
    path === "/token" ? Response.json({ token: "from-the-thief" }) : new Response("", { status: 404 }),
  );
  scanned = recorder();
  const mib = new Uint8Array(MiB).fill(0x61);
  hostile = recorder((path) => {
    if (path === "/v2/") return new Response("{}");
    if (path === "/v2/steal/basic/manifests/v1")
      return new Response("", { status: 401, headers: { "www-authenticate": 'Basic realm="hostile"' } });
    if (path === "/v2/steal/bearer/manifests/v1")
      return new Response("", {
        status: 401,
        headers: {
          "www-authenticate": `Bearer realm="http://127.0.0.1:${thief.port}/token",service="hostile",scope="repository:steal/bearer:pull"`,
        },
      });
    // A small module two proplets share (its digest is what the manifest says).
    if (path === "/v2/shared/app/manifests/v1") return manifest({ digest: SHARED_DIGEST, size: SHARED.length });
    if (path === `/v2/shared/app/blobs/${SHARED_DIGEST}`) return new Response(SHARED);
    if (path === "/v2/big/valid/manifests/v1") return manifest({ digest: BIG_DIGEST, size: BIG.length });
    if (path === `/v2/big/valid/blobs/${BIG_DIGEST}`) return new Response(BIG);
    // A registry that takes the connection and never answers.
    if (path.startsWith("/v2/hang/")) return new Promise<Response>(() => {});
    // A layer far over the bound; a layer that lies (says 100 bytes, sends 5 MiB); an endless manifest.
    if (path === "/v2/big/claim/manifests/v1") return manifest({ digest: hex("a"), size: 10 * 1024 * MiB });
    if (path === "/v2/big/lie/manifests/v1") return manifest({ digest: hex("b"), size: 100 });
    if (path === `/v2/big/lie/blobs/${hex("b")}`) return new Response(new Uint8Array(5 * MiB));
    if (path === "/v2/big/manifest/manifests/v1") return endless(path, new TextEncoder().encode(" ".repeat(64 << 10)));
    // Endless blobs behind manifests that claim exactly the bound.
    const m = /^\/v2\/big\/endless(\d+)\/(manifests\/v1|blobs\/.*)$/.exec(path);
    if (m?.[2] === "manifests/v1") return manifest({ digest: hex("c"), size: MAX_MODULE_MB * MiB });
    if (m) return endless(path, mib);
    return new Response("{}", { status: 404 });
  });
  closedPort = await freePort();
  s = await startServe({
    env: {
      PROPELLER_REGISTRY_USERNAME: "alice",
      PROPELLER_REGISTRY_PASSWORD: "s3cret",
      PROPELLER_REGISTRY_AUTH_HOSTS: locked.host,
    },
    extra: ["--registry-allow", `${hostile.host},127.0.0.1:${closedPort}`, "--max-module-mb", String(MAX_MODULE_MB)],
  });
  const login = await identity(s.url, "proplet", "attacker");
  attacker = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "attacker", ...login });
  await attacker.subscribeAsync(`${T}/registry/server`, { qos: 1 });
  attacker.on("message", (_t, p) => answers.push(JSON.parse(p.toString())));
}

export async function stopProxySite(): Promise<void> {
  await attacker?.endAsync();
  await s?.kill("SIGKILL");
  locked?.proc.kill("SIGKILL");
  for (const r of [hostile, thief, scanned]) r?.srv.stop(true);
}

/** The attacker asks the proxy for `app` (naming itself, as our proplets do) and gets the first answer. */
export async function ask(app: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const from = answers.length;
  await attacker.publishAsync(`${T}/registry/proplet`, JSON.stringify({ app_name: app, proplet_id: "attacker" }), {
    qos: 1,
  });
  return until(`an answer for ${app}`, () => answers.slice(from).find((a) => a.app_name === app), timeoutMs, 20);
}

export async function healthy(): Promise<void> {
  expect((await fetch(`${s.url}/health`)).status).toBe(200);
}

/** An error a proplet sees must not map the gateway's network. */
export function namesNoAddress(error: unknown, ports: number[]): void {
  expect(typeof error).toBe("string");
  expect(error as string).not.toContain("127.0.0.1");
  expect(error as string).not.toMatch(/ECONN|connect/i);
  for (const p of ports) expect(error as string).not.toContain(String(p));
}
