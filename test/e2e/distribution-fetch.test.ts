import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSign, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { bigModule, cliAsync, s, startDistributionSite, stopDistributionSite } from "../distribution-site.ts";
import {
  FIXTURES,
  fixture,
  identity,
  runTask,
  type Serve,
  type spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  untilAlive,
} from "../helpers.ts";
import { startRegistry } from "../registry.ts";

// Wasm distribution, the other ways a module is fetched: through a registry behind a bearer-token service (a real
// one signing JWTs here), from an http(s) image_url, and over MQTT chunks with one lost in flight. Push, pull,
// basic auth, caching and encrypted modules are distribution.test.ts; the site is test/distribution-site.ts.

beforeAll(startDistributionSite);
afterAll(stopDistributionSite);

describe("bearer token auth", () => {
  test("push and pull through the registry's token challenge (a real token service signing JWTs)", async () => {
    const dir = tempDir("token-");
    const openssl = Bun.spawnSync([
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=token",
    ]);
    if (!openssl.success) throw new Error(`openssl could not make a certificate: ${openssl.stderr}`);
    const key = readFileSync(join(dir, "key.pem"), "utf8");
    const der = new X509Certificate(readFileSync(join(dir, "cert.pem"))).raw.toString("base64");
    const b64u = (v: string | Buffer) => Buffer.from(v).toString("base64url");
    const scopes: string[] = [];
    const basics: string[] = [];
    const tokens = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const u = new URL(req.url);
        if (req.headers.get("authorization")) basics.push(req.headers.get("authorization")!);
        if (req.headers.get("authorization") !== `Basic ${btoa("bob:tok3n")}`)
          return new Response("who are you", { status: 401 });
        const scope = u.searchParams.get("scope") ?? "";
        scopes.push(scope);
        const [, name, actions] = scope.split(":");
        const now = Math.floor(Date.now() / 1000);
        const head = b64u(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [der] }));
        const body = b64u(
          JSON.stringify({
            iss: "test-issuer",
            sub: "bob",
            aud: u.searchParams.get("service"),
            exp: now + 300,
            nbf: now - 10,
            iat: now,
            jti: crypto.randomUUID(),
            access: name ? [{ type: "repository", name, actions: actions!.split(",") }] : [],
          }),
        );
        return Response.json({
          token: `${head}.${body}.${b64u(createSign("RSA-SHA256").update(`${head}.${body}`).sign(key))}`,
        });
      },
    });
    const reg = await startRegistry(undefined, {
      realm: `http://127.0.0.1:${tokens.port}/token`,
      certFile: join(dir, "cert.pem"),
    });
    const both = `${reg.host},127.0.0.1:${tokens.port}`;
    try {
      const pushed = await cliAsync([
        "push",
        join(FIXTURES, "add.wasm"),
        `${reg.host}/demo/tok:v1`,
        "--username",
        "bob",
        "--password",
        "tok3n",
        "--registry-auth-hosts",
        both,
      ]);
      expect(pushed.stderr).toBe("");
      expect(scopes.some((sc) => sc.includes("push"))).toBe(true);
      const out = join(dir, "pulled.wasm");
      expect(
        (
          await cliAsync(["pull", `${reg.host}/demo/tok:v1`, "-o", out, "--username", "bob", "--password", "tok3n"], {
            PROPELLER_REGISTRY_AUTH_HOSTS: both,
          })
        ).exitCode,
      ).toBe(0);
      expect(readFileSync(out).equals(Buffer.from(fixture("add")))).toBe(true);
      const refused = await cliAsync([
        "pull",
        `${reg.host}/demo/tok:v1`,
        "-o",
        out,
        "--username",
        "bob",
        "--password",
        "wrong",
        "--registry-auth-hosts",
        both,
      ]);
      expect(refused.stderr).toContain("token service");
      // The token service is another host (port): without it named, the credentials do not go there.
      const seen = basics.length;
      const unnamed = await cliAsync([
        "pull",
        `${reg.host}/demo/tok:v1`,
        "-o",
        out,
        "--username",
        "bob",
        "--password",
        "tok3n",
      ]);
      expect(unnamed.stderr).toContain("token service");
      expect(basics.length).toBe(seen);
    } finally {
      reg.proc.kill("SIGKILL");
      tokens.stop(true);
    }
  });
});

describe("http(s) image_url", () => {
  test("a module served over HTTP runs; a 404 and a wrong content type fail with the reason", async () => {
    const srv = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (path === "/add.wasm")
          return new Response(fixture("add"), { headers: { "content-type": "application/wasm" } });
        if (path === "/page.html") return new Response("<html></html>", { headers: { "content-type": "text/html" } });
        return new Response("no", { status: 404 });
      },
    });
    try {
      const base = `http://127.0.0.1:${srv.port}`;
      expect(await runTask(s.url, { name: "add", image_url: `${base}/add.wasm`, inputs: [20, 22] })).toMatchObject({
        state: 3,
        results: "42",
      });
      const missing = await runTask(s.url, { name: "add", image_url: `${base}/gone.wasm`, inputs: [1, 1] });
      expect(missing.error).toBe(`HTTP 404 fetching wasm from ${base}/gone.wasm`);
      const html = await runTask(s.url, { name: "add", image_url: `${base}/page.html`, inputs: [1, 1] });
      expect(html.error).toContain("unexpected content type text/html");
    } finally {
      srv.stop(true);
    }
  });
});

describe("chunk loss", () => {
  // A serve without its proxy; this test answers chunk requests itself and drops one chunk in flight.
  let n: Serve;
  let proplet: ReturnType<typeof spawnPropeller>;
  let lossy: mqtt.MqttClient;
  const requests: { app_name: string; chunks?: number[] }[] = [];
  const module = bigModule(1_200_000); // 3 chunks of 512000 bytes
  const digest = `sha256:${new Bun.CryptoHasher("sha256").update(module).digest("hex")}`;
  let neverSend = -1;

  beforeAll(async () => {
    n = await startServe({ extra: ["--no-proxy", "--no-local-proplet"] });
    proplet = await spawnProplet(n, "chunky", {
      PROPLET_FETCH_TIMEOUT: "4",
    });
    const login = await identity(n.url, "proxy", "lossy-proxy");
    lossy = await mqtt.connectAsync(`mqtt://127.0.0.1:${n.mqttPort}`, { clientId: "lossy-proxy", ...login });
    await lossy.subscribeAsync("m/default/c/default/registry/proplet", { qos: 1 });
    lossy.on("message", (_t, payload) => {
      const req = JSON.parse(payload.toString());
      requests.push(req);
      const total = Math.ceil(module.length / 512000);
      const first = requests.filter((r) => r.app_name === req.app_name).length === 1;
      const wanted: number[] = req.chunks ?? Array.from({ length: total }, (_, i) => i);
      for (const i of wanted) {
        if (i === neverSend || (first && i === 1)) continue; // dropped in flight
        const data = Buffer.from(module.subarray(i * 512000, (i + 1) * 512000)).toString("base64");
        lossy.publish(
          "m/default/c/default/registry/server",
          JSON.stringify({ app_name: req.app_name, chunk_idx: i, total_chunks: total, data, digest }),
          { qos: 1 },
        );
      }
    });
    await untilAlive(n.url, "chunky");
  });
  afterAll(async () => {
    await lossy?.endAsync();
    await proplet?.kill("SIGKILL");
    await n?.kill("SIGKILL");
  });

  test("a dropped chunk is requested again and the module runs", async () => {
    const t = await runTask(n.url, { name: "add", image_url: "registry.example.com/lossy/mod:v1", inputs: [2, 2] });
    expect(t).toMatchObject({ state: 3, results: "4" });
    expect(requests.find((r) => r.app_name === "registry.example.com/lossy/mod:v1" && r.chunks)?.chunks).toEqual([1]);
  });

  test("a chunk that never comes fails the task after the fetch timeout, naming what is missing", async () => {
    neverSend = 2;
    const t = await runTask(
      n.url,
      { name: "add", image_url: "registry.example.com/lossy/other:v1", inputs: [2, 2] },
      10_000,
    );
    expect(t.state).toBe(4);
    expect(t.error).toContain("did not arrive within 4s");
    expect(t.error).toContain("received 2 of 3 chunks, missing 2");
  });
});
