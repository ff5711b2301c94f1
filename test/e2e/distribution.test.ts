import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSign, generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  FIXTURES,
  fixture,
  http,
  identity,
  MAIN,
  ROOT,
  runTask,
  type Serve,
  type spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
} from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// Wasm distribution against a real registry: Debian's docker-registry, started here on free ports, one open
// and one behind htpasswd basic auth.

/** For tests that serve HTTP from this process: a synchronous spawn would block the answer. */
async function cliAsync(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([process.execPath, MAIN, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { exitCode, stdout, stderr };
}

function cli(args: string[], env: Record<string, string> = {}) {
  return Bun.spawnSync([process.execPath, MAIN, ...args], { env: { ...process.env, ...env } });
}

/** A module of about `size` bytes: add.wasm plus a custom section of random bytes. */
function bigModule(size: number): Uint8Array {
  const add = fixture("add");
  const payload = crypto.getRandomValues(new Uint8Array(size));
  const name = new TextEncoder().encode("pad");
  const body = new Uint8Array([name.length, ...name, ...payload]);
  const leb: number[] = [];
  for (let n = body.length; ; ) {
    const b = n & 0x7f;
    n >>>= 7;
    if (n) leb.push(b | 0x80);
    else {
      leb.push(b);
      break;
    }
  }
  const out = new Uint8Array(add.length + 1 + leb.length + body.length);
  out.set(add);
  out.set([0, ...leb], add.length);
  out.set(body, add.length + 1 + leb.length);
  return out;
}

let open: Registry;
let locked: Registry;
let s: Serve;
const creds = { PROPELLER_REGISTRY_USERNAME: "alice", PROPELLER_REGISTRY_PASSWORD: "s3cret" };

beforeAll(async () => {
  open = await startRegistry();
  locked = await startRegistry({ user: "alice", password: "s3cret" });
  // The credentials are for the locked registry alone (they go to no other host).
  s = await startServe({ env: { ...creds, PROPELLER_REGISTRY_AUTH_HOSTS: locked.host } });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
  open?.proc.kill("SIGKILL");
  locked?.proc.kill("SIGKILL");
});

describe("push, pull and tasks with image_url", () => {
  test("push :v1 and :v2; tasks run their own module", async () => {
    for (const [file, tag] of [
      ["add", "v1"],
      ["main-only", "v2"],
    ] as const) {
      const r = cli(["push", join(FIXTURES, `${file}.wasm`), `${open.host}/demo/mod:${tag}`]);
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toMatch(new RegExp(`^${open.host}/demo/mod:${tag} sha256:[a-f0-9]{64}`));
    }
    const v1 = await runTask(s.url, { name: "add", image_url: `${open.host}/demo/mod:v1`, inputs: [10, 20] });
    expect(v1).toMatchObject({ state: 3, results: "30" });
    const v2 = await runTask(s.url, { name: "main", image_url: `${open.host}/demo/mod:v2`, inputs: [3, 1.5] });
    expect(v2).toMatchObject({ state: 3, results: "4.5" });
  });

  test("basic auth: push and pull with credentials, a clear error without", async () => {
    const noAuth = cli(["push", join(FIXTURES, "add.wasm"), `${locked.host}/demo/add:v1`]);
    expect(noAuth.exitCode).toBe(1);
    expect(noAuth.stderr.toString()).toContain("asks for basic");
    const ok = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      `${locked.host}/demo/add:v1`,
      "--username",
      "alice",
      "--password",
      "s3cret",
    ]);
    expect(ok.exitCode).toBe(0);
    const out = join(tempDir(), "pulled.wasm");
    const pulled = cli(["pull", `${locked.host}/demo/add:v1`, "-o", out], creds);
    expect(pulled.exitCode).toBe(0);
    expect(Buffer.from(await Bun.file(out).arrayBuffer()).equals(Buffer.from(fixture("add")))).toBe(true);
    // serve's proxy has the credentials from its environment.
    const t = await runTask(s.url, { name: "add", image_url: `${locked.host}/demo/add:v1`, inputs: [1, 2] });
    expect(t.results).toBe("3");
  });

  test("a 5 MiB module arrives over MQTT chunks intact and runs; a digest reference works", async () => {
    const big = bigModule(5 << 20);
    const file = join(tempDir(), "big.wasm");
    writeFileSync(file, big);
    const pushed = cli(["push", file, `${open.host}/demo/big:v1`]);
    const manifestDigest = /manifest (sha256:[a-f0-9]{64})/.exec(pushed.stdout.toString())?.[1];
    const t = await runTask(s.url, { name: "add", image_url: `${open.host}/demo/big:v1`, inputs: [5, 6] }, 20_000);
    expect(t).toMatchObject({ state: 3, results: "11" });
    expect(manifestDigest).toBeTruthy();
    const byDigest = await runTask(
      s.url,
      { name: "add", image_url: `${open.host}/demo/big@${manifestDigest}`, inputs: [1, 1] },
      20_000,
    );
    expect(byDigest).toMatchObject({ state: 3, results: "2" });
  });

  test("modules are cached: with the registry gone, a known module still runs", async () => {
    open.proc.kill("SIGKILL");
    await open.proc.exited;
    const t = await runTask(s.url, { name: "add", image_url: `${open.host}/demo/mod:v1`, inputs: [7, 8] });
    expect(t).toMatchObject({ state: 3, results: "15" });
    const cached = Bun.spawnSync(["ls", join(s.dataDir, "blobs")]).stdout.toString();
    expect(cached).toMatch(/sha256-[a-f0-9]{64}/);
  });

  test("a missing image fails the task with the registry's answer", async () => {
    const t = await runTask(s.url, { name: "add", image_url: `${locked.host}/demo/absent:v9`, inputs: [1, 1] });
    expect(t.state).toBe(4);
    expect(t.error).toContain("404");
  });
});

describe("encrypted modules", () => {
  const keyPair = () =>
    generateKeyPairSync("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });

  test("pushed with --encrypt-recipient: the registry and proxy hold only ciphertext; a proplet with the key runs it, others fail saying why", async () => {
    const dir = tempDir();
    const mine = keyPair();
    const other = keyPair();
    writeFileSync(join(dir, "pub.pem"), mine.publicKey);
    mkdirSync(join(dir, "keys"));
    writeFileSync(join(dir, "keys", "mine.pem"), mine.privateKey);
    writeFileSync(join(dir, "other.pem"), other.privateKey);
    const reg = await startRegistry(); // its own: an earlier test stops the shared one
    const ref = `${reg.host}/secret/add:v1`;
    const pushed = cli(["push", join(FIXTURES, "add.wasm"), ref, "--encrypt-recipient", `jwe:${join(dir, "pub.pem")}`]);
    expect(`${pushed.stdout}${pushed.stderr}`).toContain("encrypted for 1 recipient(s)");

    // What the registry holds: ocicrypt's media type and annotations, and a blob that is not the module.
    const manifest = (await (
      await fetch(`http://${reg.host}/v2/secret/add/manifests/v1`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      })
    ).json()) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[] };
    const layer = manifest.layers[0]!;
    expect(layer.mediaType).toBe("application/wasm+encrypted");
    expect(Object.keys(layer.annotations).sort()).toEqual([
      "org.opencontainers.image.enc.keys.jwe",
      "org.opencontainers.image.enc.pubopts",
    ]);
    const blob = new Uint8Array(
      await (await fetch(`http://${reg.host}/v2/secret/add/blobs/${layer.digest}`)).arrayBuffer(),
    );
    expect(Buffer.from(blob.subarray(0, 4)).equals(Buffer.from([0, 0x61, 0x73, 0x6d]))).toBe(false);
    expect(Buffer.from(blob).includes(Buffer.from(fixture("add").subarray(8)))).toBe(false);

    // pull opens it with the key, and refuses to write ciphertext as a module without one.
    const pulled = cli(["pull", ref, "-o", join(dir, "out.wasm"), "--decryption-key", join(dir, "keys")]);
    expect(pulled.stdout.toString()).toContain("decrypted");
    expect(Buffer.from(readFileSync(join(dir, "out.wasm"))).equals(Buffer.from(fixture("add")))).toBe(true);
    const noKey = cli(["pull", ref, "-o", join(dir, "x.wasm")]);
    expect(noKey.exitCode).not.toBe(0);
    expect(noKey.stderr.toString()).toContain("is encrypted: give --decryption-key");

    const holder = await spawnProplet(s, "key-holder", { PROPLET_DECRYPTION_KEYS: join(dir, "keys") });
    const wrong = await spawnProplet(s, "wrong-key", { PROPLET_DECRYPTION_KEYS: join(dir, "other.pem") });
    try {
      await untilAlive(s.url, "key-holder");
      await untilAlive(s.url, "wrong-key");
      const ok = await runTask(s.url, {
        name: "add",
        image_url: ref,
        inputs: [10, 20],
        encrypted: true,
        proplet_id: "key-holder",
      });
      expect(ok).toMatchObject({ state: 3, results: "30" });
      const refused = await runTask(s.url, { name: "add", image_url: ref, inputs: [1, 2], proplet_id: "wrong-key" });
      expect(refused.state).toBe(4);
      expect(refused.error).toBe(
        "encrypted module: no decryption key fits this module (none of the keys is a recipient of its JWE)",
      );
      const local = (await http(`${s.url}/proplets`)).body.proplets.find(
        (p: { id: string; alive: boolean }) => p.id !== "key-holder" && p.id !== "wrong-key" && p.alive,
      );
      const keyless = await runTask(s.url, { name: "add", image_url: ref, inputs: [1, 2], proplet_id: local.id });
      expect(keyless.error).toContain(
        "encrypted module: the module is encrypted and this proplet has no decryption key",
      );
      // Marked encrypted but served in the clear: refused.
      expect(cli(["push", join(FIXTURES, "add.wasm"), `${reg.host}/clear/add:v1`]).exitCode).toBe(0);
      const plain = await runTask(s.url, {
        name: "add",
        image_url: `${reg.host}/clear/add:v1`,
        inputs: [1, 2],
        encrypted: true,
        proplet_id: "key-holder",
      });
      expect(plain.error).toBe("the task is marked encrypted but its module arrived unencrypted: refusing to run it");
    } finally {
      await holder.kill();
      await wrong.kill();
      reg.proc.kill("SIGKILL");
    }
  }, 30_000);
});

describe("federated learning through the image proxy", () => {
  test("upstream's Go FL client, pushed to the registry, runs a round as task_wasm_image", async () => {
    const reg = await startRegistry();
    try {
      const ref = `${reg.host}/fl/client:v1`;
      const pushed = cli(["push", join(ROOT, "test", "fixtures", "upstream", "fl-client.wasm"), ref]);
      expect(pushed.exitCode).toBe(0);
      const local = (await http(`${s.url}/proplets`)).body.proplets.find((p: { alive: boolean }) => p.alive);
      const data = Array.from({ length: 16 }, (_, i) => ({ x: [(i % 10) / 10, 0.5, 0.2], y: i % 2 }));
      expect((await http(`${s.url}/fl/datasets/${local.id}`, "POST", { data })).status).toBe(201);
      const r = await http(`${s.url}/fl/experiments`, "POST", {
        experiment_id: "via-proxy",
        round_id: "proxy-1",
        participants: [local.id],
        task_wasm_image: ref,
        hyperparams: { epochs: 1, lr: 0.01, batch_size: 16 },
        timeout_s: 60,
      });
      expect(r.status).toBe(200);
      const status = await until(
        "the round to complete",
        async () => {
          const st = (await http(`${s.url}/fl/rounds/proxy-1/complete`)).body.status;
          return st.completed && st;
        },
        30_000,
        200,
      );
      expect(status).toMatchObject({ state: "completed", num_updates: 1 });
      const model = (await http(`${s.url}/fl/models/${status.model_version}`)).body;
      expect(model.w).toHaveLength(3);
      expect(model.w).not.toEqual([0, 0, 0]); // upstream's success check: the model moved
    } finally {
      reg.proc.kill("SIGKILL");
    }
  }, 45_000);
});

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
