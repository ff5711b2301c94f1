import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  bigModule,
  cli,
  creds,
  locked,
  open,
  s,
  startDistributionSite,
  stopDistributionSite,
} from "../distribution-site.ts";
import { FIXTURES, fixture, http, ROOT, runTask, spawnProplet, tempDir, until, untilAlive } from "../helpers.ts";
import { startRegistry } from "../registry.ts";

// Wasm distribution against a real registry: Debian's docker-registry, started here on free ports, one open
// and one behind htpasswd basic auth.
// This file: push, pull, basic auth, caching, encrypted modules and an FL round through the proxy. A bearer-token
// registry, http(s) image URLs and lost chunks are distribution-fetch.test.ts; the site is test/distribution-site.ts.

beforeAll(startDistributionSite);
afterAll(stopDistributionSite);

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
