import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  FIXTURES,
  freePort,
  http,
  identity,
  MAIN,
  runTask,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  until,
} from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// The OCI proxy attacked as a proplet would (docs/ARCHITECTURE.md, "Bounds and refusals", "OCI proxy"): a real
// serve with registry credentials, a provisioned proplet speaking MQTT, a hostile registry and a token thief on
// loopback (Bun.serve here, recording every request), and Debian's docker-registry for the happy path.

const T = "m/default/c/default";
const MiB = 1 << 20;
const MAX_MODULE_MB = 8;

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

interface Seen {
  path: string;
  auth: string | null;
}

/** A loopback HTTP server that records every request and answers with `route`. */
function recorder(route: (path: string, req: Request) => Response = () => new Response("no", { status: 404 })) {
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

const hex = (c: string) => `sha256:${c.repeat(64)}`;
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

/** Bytes the hostile registry produced for each endless body, as serve pulled them. */
const produced = new Map<string, number>();
function endless(path: string, piece: Uint8Array): Response {
  produced.set(path, 0);
  return new Response(
    new ReadableStream({
      pull(c) {
        produced.set(path, (produced.get(path) ?? 0) + piece.length);
        c.enqueue(piece);
      },
    }),
    { headers: { "content-type": "application/octet-stream" } },
  );
}

let s: Serve;
let locked: Registry;
let hostile: ReturnType<typeof recorder>;
let thief: ReturnType<typeof recorder>;
let scanned: ReturnType<typeof recorder>;
let closedPort: number;
let attacker: mqtt.MqttClient;
const answers: Record<string, unknown>[] = [];

beforeAll(async () => {
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
}, 30_000);

afterAll(async () => {
  await attacker?.endAsync();
  await s?.kill("SIGKILL");
  locked?.proc.kill("SIGKILL");
  for (const r of [hostile, thief, scanned]) r?.srv.stop(true);
});

/** The attacker asks the proxy for `app` (naming itself, as our proplets do) and gets the first answer. */
async function ask(app: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const from = answers.length;
  await attacker.publishAsync(`${T}/registry/proplet`, JSON.stringify({ app_name: app, proplet_id: "attacker" }), {
    qos: 1,
  });
  return until(`an answer for ${app}`, () => answers.slice(from).find((a) => a.app_name === app), timeoutMs, 20);
}

async function healthy(): Promise<void> {
  expect((await fetch(`${s.url}/health`)).status).toBe(200);
}

/** An error a proplet sees must not map the gateway's network. */
function namesNoAddress(error: unknown, ports: number[]): void {
  expect(typeof error).toBe("string");
  expect(error as string).not.toContain("127.0.0.1");
  expect(error as string).not.toMatch(/ECONN|connect/i);
  for (const p of ports) expect(error as string).not.toContain(String(p));
}

describe("who may ask for what", () => {
  test("a reference neither dispatched nor allowed is refused before any request, the same for an open port and a closed one", async () => {
    const open = await ask(`${scanned.host}/any/thing:v1`);
    const closed = await ask(`127.0.0.1:${await freePort()}/any/thing:v1`);
    const inside = await ask("localhost:22/ssh/banner:v1");
    for (const a of [open, closed, inside]) {
      expect(a.error).toMatch(/^not allowed: /);
      expect(a.proplet_id).toBe("attacker"); // for the asker only: the embedded broker delivers it there
      namesNoAddress(a.error, [scanned.port]);
    }
    expect(open.error).toBe(closed.error as string); // no oracle: an open port looks like a closed one
    expect(scanned.seen).toEqual([]);
    await healthy();
  });

  test("a reference the manager dispatched to another proplet is refused to this one", async () => {
    const ref = `${scanned.host}/dispatched/mod:v1`;
    const t = await runTask(s.url, { name: "add", image_url: ref, inputs: [1, 2] });
    expect(t.state).toBe(4); // the scanned server has no such image: a 404, told to the proplet that ran it
    expect(t.error).toContain("404");
    expect(t.error).not.toContain("127.0.0.1");
    const before = scanned.seen.length;
    expect(before).toBeGreaterThan(0);
    const a = await ask(ref);
    expect(a.error).toMatch(/^not allowed: /);
    expect(scanned.seen.length).toBe(before);
  });

  test("a module two proplets were sent goes to each of them by name, and to no third proplet", async () => {
    const ref = `${hostile.host}/shared/app:v1`;
    // Two proplets of the attacker's site that the manager sends the module to; they speak MQTT themselves.
    const peers = await Promise.all(
      ["edge-a", "edge-b"].map(async (id) => {
        const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
          clientId: id,
          ...(await identity(s.url, "proplet", id)),
        });
        const got: Record<string, unknown>[] = [];
        c.on("message", (_t, p) => got.push(JSON.parse(p.toString())));
        await c.subscribeAsync(`${T}/registry/server`, { qos: 1 });
        const hello = { proplet_id: id, namespace: "", metadata: { max_tasks: 4 } };
        await c.publishAsync(`${T}/control/proplet/create`, JSON.stringify(hello), { qos: 1 });
        await c.publishAsync(`${T}/control/proplet/alive`, JSON.stringify({ proplet_id: id, status: "online" }), {
          qos: 1,
        });
        return { id, c, got };
      }),
    );
    try {
      for (const p of peers) {
        await until(`${p.id} to be alive`, async () => (await http(`${s.url}/proplets/${p.id}`)).body?.alive === true);
        const t = (
          await http<{ id: string }>(`${s.url}/tasks`, "POST", { name: "add", image_url: ref, proplet_id: p.id })
        ).body;
        expect((await http(`${s.url}/tasks/${t.id}/start`, "POST")).status).toBe(200);
      }
      const from = answers.length;
      // Both ask at once: one fetch, sent to both.
      await Promise.all(
        peers.map((p) => p.c.publishAsync(`${T}/registry/proplet`, JSON.stringify({ app_name: ref }), { qos: 1 })),
      );
      for (const p of peers) {
        const chunk = await until(`${p.id}'s chunk`, () => p.got.find((m) => m.app_name === ref && m.data), 15_000);
        expect(chunk.proplet_id).toBe(p.id);
      }
      await Bun.sleep(300);
      // The attacker, subscribed to the same topic, got nothing of it.
      expect(answers.slice(from).filter((a) => a.app_name === ref)).toEqual([]);
      await healthy();
    } finally {
      // They never run what they are sent: no later test's task may be placed on them.
      for (const p of peers) {
        await http(`${s.url}/proplets/${p.id}/cordon`, "POST");
        await p.c.endAsync();
      }
    }
  });

  test("an allowed registry that is down: 'registry unreachable', not the connection error", async () => {
    const a = await ask(`127.0.0.1:${closedPort}/down/mod:v1`);
    expect(a.error).toBe("registry unreachable");
    namesNoAddress(a.error, [closedPort]);
    await healthy();
  });
});

describe("credentials stay with their registry", () => {
  test("an allowed registry's basic challenge and a bearer realm on another port get none", async () => {
    const basic = await ask(`${hostile.host}/steal/basic:v1`);
    expect(basic.error).toBe("the registry asks for credentials this proxy has none for");
    const bearer = await ask(`${hostile.host}/steal/bearer:v1`);
    expect(typeof bearer.error).toBe("string");
    namesNoAddress(bearer.error, [thief.port, hostile.port]);
    expect(thief.seen.length).toBeGreaterThan(0); // asked, anonymously, for a pull token
    expect(thief.seen.filter((r) => r.auth)).toEqual([]);
    // The hostile registry gets the thief's own token back at most, never the operator's password.
    expect(hostile.seen.filter((r) => r.auth && r.auth !== "Bearer from-the-thief")).toEqual([]);
    await healthy();
  });

  test("the registry they are for still gets them: a task from the locked docker-registry runs", async () => {
    const push = Bun.spawnSync([
      process.execPath,
      MAIN,
      "push",
      join(FIXTURES, "add.wasm"),
      `${locked.host}/demo/add:v1`,
      "--username",
      "alice",
      "--password",
      "s3cret",
    ]);
    expect(push.exitCode).toBe(0);
    const t = await runTask(s.url, { name: "add", image_url: `${locked.host}/demo/add:v1`, inputs: [20, 22] });
    expect(t).toMatchObject({ state: 3, results: "42" });
  });
});

describe("sizes", () => {
  test("a layer that claims 10 GiB is refused before its blob is asked for", async () => {
    const a = await ask(`${hostile.host}/big/claim:v1`);
    expect(a.error).toContain(`more than this proxy's limit of ${MAX_MODULE_MB * MiB}`);
    expect(hostile.seen.some((r) => r.path.startsWith("/v2/big/claim/blobs/"))).toBe(false);
  });

  test("a blob longer than its descriptor and an endless manifest are cut off", async () => {
    const lie = await ask(`${hostile.host}/big/lie:v1`);
    expect(lie.error).toBe(`blob ${hex("b")} is larger than 100 bytes`);
    const m = await ask(`${hostile.host}/big/manifest:v1`);
    expect(m.error).toBe(`manifest big/manifest:v1 is larger than ${4 * MiB} bytes`);
    expect(produced.get("/v2/big/manifest/manifests/v1")!).toBeLessThan(64 * MiB);
  });

  test("endless blobs, twelve asked at once by two proplets: serve reads each only to the bound, four per proplet, its memory stays bounded, it stays healthy", async () => {
    const pid = s.proc.pid;
    const before = rssMiB(pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMiB(pid));
    }, 25);
    // A second provisioned proplet joins in, hearing its own answers.
    const login = await identity(s.url, "proplet", "attacker2");
    const second = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "attacker2", ...login });
    const heard: Record<string, unknown>[] = [];
    await second.subscribeAsync(`${T}/registry/server`, { qos: 1 });
    second.on("message", (_t, p) => heard.push(JSON.parse(p.toString())));
    const apps = Array.from({ length: 12 }, (_, i) => `${hostile.host}/big/endless${i}:v1`);
    const from = answers.length;
    apps.forEach((app, i) => {
      const [who, id] = i < 8 ? [attacker, "attacker"] : [second, "attacker2"];
      who.publish(`${T}/registry/proplet`, JSON.stringify({ app_name: app, proplet_id: id }), { qos: 1 });
    });
    const answered = () => [...answers.slice(from), ...heard].filter((a) => apps.includes(a.app_name as string));
    await until(
      "an answer for every endless blob",
      () => apps.every((app) => answered().some((a) => a.app_name === app)),
      30_000,
      50,
    );
    clearInterval(sampler);
    await second.endAsync();
    // Unique by module: before the broker sorts answers by recipient, each client hears both clients' answers.
    const mine = [...new Map(answered().map((a) => [a.app_name, a])).values()];
    // Four modules per proplet at a time: the others are answered "busy" at once, without a request.
    const cut = mine.filter((a) => a.error === `blob ${hex("c")} is larger than ${MAX_MODULE_MB * MiB} bytes`);
    const busy = mine.filter((a) => a.error === "the proxy is busy: try again later");
    expect(cut.length + busy.length).toBe(12);
    expect(cut.length).toBeGreaterThanOrEqual(8);
    expect(busy.every((a) => a.proplet_id === "attacker")).toBe(true);
    expect(mine.some((a) => a.chunk_idx !== undefined)).toBe(false);
    // Nobody reads on: what the registry produced stops growing, each about the bound (plus socket buffers).
    const streams = [...produced].filter(([p]) => p.includes("/blobs/"));
    expect(streams.length).toBe(cut.length);
    const total = streams.reduce((n, [, b]) => n + b, 0);
    await Bun.sleep(500);
    expect(streams.reduce((n, [p]) => n + produced.get(p)!, 0)).toBe(total);
    for (const [, b] of streams) expect(b).toBeLessThan((MAX_MODULE_MB + 16) * MiB);
    const after = rssMiB(pid);
    console.log(
      `proxy attack: serve RSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB, ${after.toFixed(0)} MiB after 12 requests for endless blobs from 2 proplets (${cut.length} read to the bound, ${busy.length} busy; registry produced ${(total / MiB).toFixed(0)} MiB in all)`,
    );
    expect(peak - before).toBeLessThan(150);
    await healthy();
    // And it still serves what it should.
    const t = await runTask(s.url, { name: "add", image_url: `${locked.host}/demo/add:v1`, inputs: [1, 2] });
    expect(t.results).toBe("3");
  }, 45_000);
});

describe("propeller proxy alone", () => {
  test("serves only its allow-list and the registries of its credentials; refuses credentials without their hosts", async () => {
    const bad = Bun.spawnSync([process.execPath, MAIN, "proxy"], {
      env: { ...process.env, PROPELLER_REGISTRY_USERNAME: "alice", PROPELLER_REGISTRY_PASSWORD: "s3cret" },
    });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.toString()).toContain("PROPELLER_REGISTRY_AUTH_HOSTS");
    const badList = Bun.spawnSync([process.execPath, MAIN, "proxy", "--registry-allow", "http://x/"]);
    expect(badList.exitCode).toBe(1);
    expect(badList.stderr.toString()).toContain('--registry-allow: "http://x/" is not a registry host[:port]');

    const login = await identity(s.url, "proxy", "alone");
    const p = spawnPropeller(["proxy", "--mqtt-url", `mqtt://127.0.0.1:${s.mqttPort}`, "--data-dir", tempDir()], {
      PROXY_ENTITY_ID: login.username,
      PROXY_API_KEY: login.password,
      PROPELLER_REGISTRY_ALLOW: `127.0.0.1:${closedPort}`,
    });
    try {
      await until("the standalone proxy to subscribe", () => p.output().includes("OCI proxy on"), 10_000);
      const before = scanned.seen.length;
      // Two proxies answer now (serve's and this one): both refuse, neither asks the scanned server.
      const a = await ask(`${scanned.host}/alone/x:v1`);
      expect(a.error).toMatch(/^not allowed: /);
      expect(scanned.seen.length).toBe(before);
    } finally {
      await p.kill();
    }
  }, 30_000);
});

test("a thousand refused requests cost no registry request and leave serve healthy", async () => {
  const from = answers.length;
  for (let i = 0; i < 1000; i++)
    attacker.publish(
      `${T}/registry/proplet`,
      JSON.stringify({ app_name: `${scanned.host}/flood/m${i}:v1`, proplet_id: "attacker" }),
      { qos: 0 },
    );
  await until("the refusals", () => answers.length - from >= 1000, 20_000, 50);
  expect(scanned.seen.filter((r) => r.path.includes("/flood/"))).toEqual([]);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
