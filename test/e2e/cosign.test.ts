import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseReference, type Reference } from "../../src/core/oci.ts";
import { writeCosignSignature } from "../../src/proxy/cosign.ts";
import { RegistryClient } from "../../src/proxy/registry.ts";
import {
  cli,
  FIXTURES,
  http,
  runTask,
  type Serve,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
} from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// cosign's signature format under a `sigstoreSigned` requirement (docs/ARCHITECTURE.md, "Trusted code"):
// `propeller keys create` makes the key, `push --sign-key` writes `sha256-<hex>.sig` beside the manifest in
// Debian's docker-registry, serve runs what that key signed and refuses the rest, naming rule and scope.

const dir = tempDir("cosign-");
const PASS = "correct horse battery staple";
let registry: Registry;
let s: Serve;

function push(tag: string, file: string, key?: string, env: Record<string, string> = {}): string {
  const r = cli(
    ["push", join(FIXTURES, file), `${registry.host}/app:${tag}`, ...(key ? ["--sign-key", join(dir, key)] : [])],
    env,
  );
  if (r.code !== 0) throw new Error(r.stderr);
  return /manifest (sha256:[a-f0-9]{64})/.exec(r.stdout)![1]!;
}

const policy = () => ["--trust-policy", join(dir, "policy.json")];

beforeAll(async () => {
  const made = cli(["keys", "create", "--output-key-prefix", join(dir, "site")], { PROPELLER_KEY_PASSPHRASE: PASS });
  expect(made.code).toBe(0);
  expect(readFileSync(join(dir, "site.key"), "utf8")).toStartWith("-----BEGIN ENCRYPTED PRIVATE KEY-----");
  const other = cli(["keys", "create", "--output-key-prefix", join(dir, "other")], { PROPELLER_KEY_PASSPHRASE: "" });
  expect(other.stderr).toContain("is not encrypted");
  expect(statSync(join(dir, "other.key")).mode & 0o777).toBe(0o600);
  registry = await startRegistry();
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: { docker: { [`${registry.host}/app`]: [{ type: "sigstoreSigned", keyPath: "site.pub" }] } },
    }),
  );
  s = await startServe({ extra: policy() });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
  registry?.proc.kill("SIGKILL");
});

describe("keys create, push --sign-key, sigstoreSigned", () => {
  test("keys create refuses to overwrite a key", () => {
    const again = cli(["keys", "create", "--output-key-prefix", join(dir, "site")]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("site.key exists: not overwritten");
  });

  test("an image signed with the site's key runs; verify says why", async () => {
    const noPass = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      `${registry.host}/app:x`,
      "--sign-key",
      join(dir, "site.key"),
    ]);
    expect(noPass.code).not.toBe(0);
    expect(noPass.stderr).toContain("PROPELLER_KEY_PASSPHRASE");
    const digest = push("signed", "add.wasm", "site.key", { PROPELLER_KEY_PASSPHRASE: PASS });
    // What cosign reads: the .sig manifest, its payload layer and the signature annotation.
    const sig = await fetch(`http://${registry.host}/v2/app/manifests/${digest.replace(":", "-")}.sig`, {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    const layer = ((await sig.json()) as { layers: { mediaType: string; annotations: Record<string, string> }[] })
      .layers[0]!;
    expect(layer.mediaType).toBe("application/vnd.dev.cosign.simplesigning.v1+json");
    expect(layer.annotations["dev.cosignproject.cosign/signature"]).toMatch(/^ME[A-Za-z0-9+/]+=*$/);

    const t = await runTask(s.url, { name: "add", image_url: `${registry.host}/app:signed`, inputs: [10, 20] }, 20_000);
    expect(t).toMatchObject({ state: 3, results: "30" });
    const v = cli(["verify", `${registry.host}/app:signed`, ...policy()]);
    expect(v.stdout).toBe(
      `accepted: ${registry.host}/app is signed as scope ${registry.host}/app requires [manifest ${digest}]\n`,
    );
  });

  test("unsigned, signed for another digest, by another key, or naming another image: refused", async () => {
    push("unsigned", "fib.wasm");
    const siteKey = readFileSync(join(dir, "site.pub"), "utf8");
    expect(siteKey).toStartWith("-----BEGIN PUBLIC KEY-----");
    const unsigned = await http(`${s.url}/tasks`, "POST", { name: "u", image_url: `${registry.host}/app:unsigned` });
    expect(unsigned.status).toBe(400);
    expect(unsigned.body.error).toMatch(
      new RegExp(
        `^image_url: ${registry.host}/app requires a signature by key [0-9A-F]{4}…[0-9A-F]{4} \\(scope ${registry.host}/app\\); none found$`,
      ),
    );
    const key = /by key (\S+) /.exec(unsigned.body.error)![1]!;

    // Another digest's signature manifest copied under this one's tag: it names the other digest.
    const signedDigest = push("signed2", "count.wasm", "site.key", { PROPELLER_KEY_PASSPHRASE: PASS });
    const moved = push("moved", "cat.wasm");
    const sigOf = (d: string) => `http://${registry.host}/v2/app/manifests/${d.replace(":", "-")}.sig`;
    const m = await (
      await fetch(sigOf(signedDigest), { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } })
    ).text();
    const put = await fetch(sigOf(moved), {
      method: "PUT",
      body: m,
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(put.status).toBe(201);
    const tampered = await http(`${s.url}/tasks`, "POST", { name: "t", image_url: `${registry.host}/app:moved` });
    expect(tampered.status).toBe(400);
    expect(tampered.body.error).toBe(
      `image_url: ${registry.host}/app: the signature by key ${key} is for ${signedDigest}, not ${moved} (scope ${registry.host}/app)`,
    );

    push("otherkey", "main-only.wasm", "other.key");
    const wrongKey = await http(`${s.url}/tasks`, "POST", { name: "k", image_url: `${registry.host}/app:otherkey` });
    expect(wrongKey.status).toBe(400);
    expect(wrongKey.body.error).toContain(
      `requires a signature by key ${key} (scope ${registry.host}/app); none found`,
    );
    expect(wrongKey.body.error).toContain("signature not verified by a trusted key");
    const v = cli(["verify", `${registry.host}/app:otherkey`, ...policy()]);
    expect(v.code).toBe(1);
    expect(v.stdout).toStartWith(`refused: ${registry.host}/app requires a signature by key ${key}`);

    // The right key, the right digest, but the payload names another image.
    const idDigest = push("wrongid", "hello.wasm");
    const client = new RegistryClient({ insecure: [registry.host] });
    const ref = parseReference(`${registry.host}/app:wrongid`) as Reference;
    await writeCosignSignature(
      client,
      ref,
      `${registry.host}/other:wrongid`,
      idDigest,
      readFileSync(join(dir, "site.key"), "utf8"),
      PASS,
    );
    const wrongId = await http(`${s.url}/tasks`, "POST", { name: "i", image_url: `${registry.host}/app:wrongid` });
    expect(wrongId.status).toBe(400);
    expect(wrongId.body.error).toContain(
      `names ${registry.host}/other:wrongid, which matchRepoDigestOrExact does not accept (scope ${registry.host}/app)`,
    );

    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
    expect(metrics).toMatch(/propeller_trust_refusals_total\{rule="sigstoreSigned"\} [4-9]/);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  test("rotation: a second key's signature is added beside the first, and a policy with both keys accepts either", async () => {
    const digest = push("rotated", "fail.wasm", "site.key", { PROPELLER_KEY_PASSPHRASE: PASS });
    push("rotated", "fail.wasm", "other.key");
    push("rotated", "fail.wasm", "other.key"); // again: its own earlier signature is replaced, not repeated
    const sig = await fetch(`http://${registry.host}/v2/app/manifests/${digest.replace(":", "-")}.sig`, {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    expect(((await sig.json()) as { layers: unknown[] }).layers).toHaveLength(2);
    writeFileSync(
      join(dir, "both.json"),
      JSON.stringify({ default: [{ type: "sigstoreSigned", keyPaths: ["site.pub", "other.pub"] }] }),
    );
    const onlyOther = push("newkey", "grow.wasm", "other.key");
    for (const tag of ["rotated", "newkey", "otherkey"]) {
      const v = cli(["verify", `${registry.host}/app:${tag}`, "--trust-policy", join(dir, "both.json")]);
      expect(v.stdout).toStartWith("accepted:");
    }
    expect(onlyOther).toMatch(/^sha256:/);
  });
});

describe("dispatch and bad policies", () => {
  test("a task created before the policy fails at dispatch with the policy's reason", async () => {
    push("before", "ticker.wasm");
    const dataDir = tempDir();
    const open = await startServe({ dataDir });
    const c = await http(`${open.url}/tasks`, "POST", { name: "b", image_url: `${registry.host}/app:before` });
    expect(c.status).toBe(201);
    await open.kill("SIGTERM");
    const strict = await startServe({ dataDir, ports: { http: open.httpPort, mqtt: open.mqttPort }, extra: policy() });
    try {
      await http(`${strict.url}/tasks/${c.body.id}/start`, "POST");
      const t = await until("the task to fail", async () => {
        const x = (await http(`${strict.url}/tasks/${c.body.id}`)).body;
        return x.state >= 3 ? x : undefined;
      });
      expect(t.status).toBe("Failed");
      expect(t.error).toMatch(
        new RegExp(
          `^${registry.host}/app requires a signature by key \\S+ \\(scope ${registry.host}/app\\); none found$`,
        ),
      );
    } finally {
      await strict.kill("SIGKILL");
    }
  });

  test("an inline module runs with a sign-blob signature by a trusted key (made by openssl here), not without", async () => {
    writeFileSync(
      join(dir, "inline.json"),
      JSON.stringify({ default: [{ type: "sigstoreSigned", keyPaths: ["site.pub", "other.pub"] }] }),
    );
    const s2 = await startServe({ extra: ["--trust-policy", join(dir, "inline.json")] });
    try {
      const wasm = join(FIXTURES, "add.wasm");
      const file = readFileSync(wasm).toString("base64");
      const refused = await http(`${s2.url}/tasks`, "POST", { name: "x", file });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatch(
        /^file: an inline module requires a signature by key \S+, \S+ \(scope default\); none found$/,
      );
      // `cosign sign-blob --key` writes base64 of the DER ECDSA signature over the file: openssl makes the same.
      const der = Bun.spawnSync(["openssl", "dgst", "-sha256", "-sign", join(dir, "other.key"), wasm]);
      expect(der.exitCode).toBe(0);
      writeFileSync(join(dir, "add.sig"), `${der.stdout.toString("base64")}\n`);
      const env = { PROPELLER_URL: s2.url, PROPELLER_TOKEN: s2.token ?? "" };
      const r = cli(
        [
          "tasks",
          "create",
          "add",
          "--file",
          wasm,
          "--signature",
          join(dir, "add.sig"),
          "--inputs",
          "7,8",
          "--start",
          "--wait",
        ],
        env,
      );
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain("15");
      const other = await http(`${s2.url}/tasks`, "POST", {
        name: "y",
        file: readFileSync(join(FIXTURES, "hello.wasm")).toString("base64"),
        signature: readFileSync(join(dir, "add.sig")).toString("base64"),
      });
      expect(other.status).toBe(400);
      expect(other.body.error).toContain("none found");
    } finally {
      await s2.kill("SIGKILL");
    }
  });

  test("serve refuses a sigstoreSigned key that is not an ECDSA P-256 PEM public key", () => {
    writeFileSync(
      join(dir, "gpg.json"),
      JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: "site.key" }] }),
    );
    const r = cli(["serve", "--trust-policy", join(dir, "gpg.json"), "--http-port", "0", "--data-dir", tempDir()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("sigstoreSigned: not a PEM public key");
    writeFileSync(
      join(dir, "two.json"),
      JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: "a", keyData: "b" }] }),
    );
    const r2 = cli(["serve", "--trust-policy", join(dir, "two.json"), "--http-port", "0", "--data-dir", tempDir()]);
    expect(r2.stderr).toContain("sigstoreSigned needs exactly one of keyPath, keyPaths, keyData");
  });
});

describe("a proplet's own sigstoreSigned policy", () => {
  test("refuses an unsigned image a manager without a policy sends it (task Failed with the reason), runs a signed one", async () => {
    const plain = await startServe();
    const p = await spawnProplet(plain, "strict", { PROPLET_TRUST_POLICY: join(dir, "policy.json") });
    try {
      await untilAlive(plain.url, "strict");
      const bad = await runTask(
        plain.url,
        { name: "add", image_url: `${registry.host}/app:unsigned`, proplet_id: "strict" },
        20_000,
      );
      expect(bad.status).toBe("Failed");
      expect(bad.error).toMatch(
        new RegExp(
          `^refused by this proplet's trust policy: ${registry.host}/app requires a signature by key \\S+ \\(scope ${registry.host}/app\\); none found$`,
        ),
      );
      const good = await runTask(
        plain.url,
        { name: "add", image_url: `${registry.host}/app:signed`, proplet_id: "strict", inputs: [5, 6] },
        20_000,
      );
      expect(good).toMatchObject({ state: 3, results: "11" });
    } finally {
      await p.kill("SIGKILL");
      await plain.kill("SIGKILL");
    }
  });
});
