import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  cli,
  FIXTURES,
  http,
  identity,
  runTask,
  type Serve,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
} from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// Only trusted code runs (docs/ARCHITECTURE.md, "Trusted code"), checked against Debian's own tools: gpg makes a
// key, skopeo signs what `propeller push` wrote into Debian's docker-registry, serve runs it under a
// containers-policy.json that requires that key; and skopeo accepts what `propeller push --sign-key` signed.

const dir = tempDir("trust-");
const GNUPGHOME = join(dir, "gnupg");
const sigDir = join(dir, "sigs");
const registriesD = join(dir, "registries.d");
let registry: Registry;
let fpr = "";
let s: Serve;

function sh(cmd: string[], env: Record<string, string> = {}) {
  const p = Bun.spawnSync(cmd, { env: { ...process.env, GNUPGHOME, ...env } });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

const skopeo = (...args: string[]) =>
  sh(["skopeo", "--registries.d", registriesD, "--policy", join(dir, "open.json"), ...args]);

function push(tag: string, file = "add.wasm"): string {
  const r = cli(["push", join(FIXTURES, file), `${registry.host}/app:${tag}`]);
  if (r.code !== 0) throw new Error(r.stderr);
  return /manifest (sha256:[a-f0-9]{64})/.exec(r.stdout)![1]!;
}

/** skopeo signs the image in place (a copy onto itself), writing to the file:// lookaside. */
function skopeoSign(tag: string): void {
  const ref = `docker://${registry.host}/app:${tag}`;
  skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--sign-by", fpr, ref, ref);
}

function sigFiles(digest: string): string[] {
  const d = join(sigDir, `app@${digest.replace(":", "=")}`);
  return readdirSync(d).map((f) => join(d, f));
}

beforeAll(async () => {
  mkdirSync(GNUPGHOME, { mode: 0o700 });
  sh([
    "gpg",
    "--batch",
    "--passphrase",
    "",
    "--quick-gen-key",
    "Site Signer <signer@example.com>",
    "default",
    "default",
    "never",
  ]);
  fpr = /^fpr:+([0-9A-F]{40}):/m.exec(sh(["gpg", "--with-colons", "--list-keys"]))![1]!;
  writeFileSync(join(dir, "site.gpg"), sh(["gpg", "--armor", "--export", fpr]));
  writeFileSync(
    join(dir, "signer.asc"),
    sh(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--armor", "--export-secret-keys", fpr]),
  );
  registry = await startRegistry();
  mkdirSync(registriesD);
  writeFileSync(join(registriesD, "site.yaml"), `docker:\n  ${registry.host}:\n    lookaside: file://${sigDir}\n`);
  writeFileSync(join(dir, "open.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  const requireKey = { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "site.gpg") };
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: { docker: { [`${registry.host}/app`]: [requireKey] } },
    }),
  );
  // The registry on the allow-list: a start a rogue manager sends gets its chunks (the proplet must refuse it).
  s = await startServe({
    extra: [
      "--trust-policy",
      join(dir, "policy.json"),
      "--registries-d",
      registriesD,
      "--registry-allow",
      registry.host,
    ],
  });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
  registry?.proc.kill("SIGKILL");
  Bun.spawnSync(["gpgconf", "--kill", "gpg-agent"], { env: { ...process.env, GNUPGHOME } }); // gpg left it running
});

describe("skopeo signs, propeller runs", () => {
  test("an image skopeo signed with the site's key runs under a policy requiring that key", async () => {
    push("signed");
    skopeoSign("signed");
    const t = await runTask(s.url, { name: "add", image_url: `${registry.host}/app:signed`, inputs: [10, 20] }, 20_000);
    expect(t).toMatchObject({ state: 3, results: "30" });
    const v = cli([
      "verify",
      `${registry.host}/app:signed`,
      "--trust-policy",
      join(dir, "policy.json"),
      "--registries-d",
      registriesD,
    ]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`accepted: ${registry.host}/app is signed as scope ${registry.host}/app requires`);
  });

  test("unsigned, tampered and wrongly named images are refused with the rule and scope named", async () => {
    push("unsigned", "fib.wasm");
    // The audit trail: the live stream tells of each refusal.
    const stream = await fetch(`${s.url}/events?types=trust`, { headers: { authorization: `Bearer ${s.token}` } });
    const reader = stream.body!.getReader();
    const unsigned = await http(`${s.url}/tasks`, "POST", { name: "u", image_url: `${registry.host}/app:unsigned` });
    let seen = "";
    while (!seen.includes("none found")) seen += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(seen).toContain('"type":"trust","at_step":"create"');
    expect(seen).toContain('"rule":"signedBy"');
    expect(unsigned.status).toBe(400);
    expect(unsigned.body.error).toBe(
      `image_url: ${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
    );

    const tamperedDigest = push("tampered", "main-only.wasm");
    skopeoSign("tampered");
    for (const f of sigFiles(tamperedDigest)) {
      const b = readFileSync(f);
      b[b.length - 10]! ^= 0xff;
      writeFileSync(f, b);
    }
    const tampered = await http(`${s.url}/tasks`, "POST", { name: "t", image_url: `${registry.host}/app:tampered` });
    expect(tampered.status).toBe(400);
    expect(tampered.body.error).toContain("requires a signature by key");

    // A good signature by the right key, but naming another image: matchRepoDigestOrExact refuses it.
    const wrongDigest = push("wrongid", "count.wasm");
    writeFileSync(
      join(dir, "manifest.json"),
      skopeo("inspect", "--tls-verify=false", "--raw", `docker://${registry.host}/app:wrongid`),
    );
    const out = join(sigDir, `app@${wrongDigest.replace(":", "=")}`);
    mkdirSync(out, { recursive: true });
    sh([
      "skopeo",
      "standalone-sign",
      join(dir, "manifest.json"),
      `${registry.host}/other:wrongid`,
      fpr,
      "-o",
      join(out, "signature-1"),
    ]);
    const wrong = await http(`${s.url}/tasks`, "POST", { name: "w", image_url: `${registry.host}/app:wrongid` });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toContain(
      `names ${registry.host}/other:wrongid, which matchRepoDigestOrExact does not accept`,
    );

    // Another repository falls to the default: reject.
    const other = await http(`${s.url}/tasks`, "POST", { name: "o", image_url: `${registry.host}/elsewhere:v1` });
    expect(other.status).toBe(400);
    expect(other.body.error).toContain("is rejected (scope default)");
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
    expect(metrics).toMatch(/propeller_trust_refusals_total\{rule="signedBy"\} [3-9]/);
  });

  test("a task created before the policy fails at dispatch with the policy's reason", async () => {
    push("before", "cat.wasm");
    const dataDir = tempDir();
    const open = await startServe({ dataDir, extra: ["--trust-policy", join(dir, "open.json")] });
    const c = await http(`${open.url}/tasks`, "POST", { name: "add", image_url: `${registry.host}/app:before` });
    expect(c.status).toBe(201);
    await open.kill("SIGTERM");
    const strict = await startServe({
      dataDir,
      ports: { http: open.httpPort, mqtt: open.mqttPort },
      extra: ["--trust-policy", join(dir, "policy.json"), "--registries-d", registriesD],
    });
    try {
      await http(`${strict.url}/tasks/${c.body.id}/start`, "POST");
      const t = await until("the task to fail", async () => {
        const x = (await http(`${strict.url}/tasks/${c.body.id}`)).body;
        return x.state >= 3 ? x : undefined;
      });
      expect(t.status).toBe("Failed");
      expect(t.error).toBe(
        `${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
      );
    } finally {
      await strict.kill("SIGKILL");
    }
  });
});

describe("propeller signs, skopeo verifies", () => {
  test("push --sign-key writes a simple signature that skopeo's policy accepts", async () => {
    const r = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      `${registry.host}/app:ours`,
      "--sign-key",
      join(dir, "signer.asc"),
      "--registries-d",
      registriesD,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`signed by ${fpr}`);
    const requireKey = { type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "site.gpg") };
    writeFileSync(join(dir, "skopeo-policy.json"), JSON.stringify({ default: [requireKey] }));
    const copy = (tag: string) =>
      Bun.spawnSync(
        [
          "skopeo",
          "--registries.d",
          registriesD,
          "--policy",
          join(dir, "skopeo-policy.json"),
          "copy",
          "--src-tls-verify=false",
          `docker://${registry.host}/app:${tag}`,
          `dir:${tempDir("copy-")}`,
        ],
        { env: { ...process.env, GNUPGHOME } },
      );
    const ok = copy("ours");
    expect(ok.stderr.toString()).not.toContain("rror");
    expect(ok.exitCode).toBe(0);
    // And propeller runs it too.
    const t = await runTask(s.url, { name: "add", image_url: `${registry.host}/app:ours`, inputs: [2, 3] }, 20_000);
    expect(t).toMatchObject({ state: 3, results: "5" });
    // An unsigned image is refused by skopeo as by propeller.
    const bad = copy("unsigned");
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr.toString()).toContain("signature");
  });
});

describe("a proplet's own policy", () => {
  test("PROPLET_TRUST_POLICY refuses an unsigned image a manager without a policy sends it, and runs a signed one", async () => {
    const plain = await startServe();
    const p = await spawnProplet(plain, "strict", {
      PROPLET_TRUST_POLICY: join(dir, "policy.json"),
      PROPLET_REGISTRIES_D: registriesD,
    });
    try {
      await untilAlive(plain.url, "strict");
      const bad = await runTask(
        plain.url,
        { name: "add", image_url: `${registry.host}/app:unsigned`, proplet_id: "strict" },
        20_000,
      );
      expect(bad.status).toBe("Failed");
      expect(bad.error).toBe(
        `refused by this proplet's trust policy: ${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
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

describe("inline modules and bad policies", () => {
  test("an inline module needs a detached signature over its digest under a signing default", async () => {
    const policy = join(dir, "inline.json");
    writeFileSync(
      policy,
      JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "site.gpg") }] }),
    );
    const s2 = await startServe({ extra: ["--trust-policy", policy, "--registries-d", registriesD] });
    try {
      const wasm = readFileSync(join(FIXTURES, "add.wasm"));
      const file = wasm.toString("base64");
      const refused = await http(`${s2.url}/tasks`, "POST", { name: "x", file });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toContain("file: an inline module requires a signature by key");
      // skopeo standalone-sign over a "manifest" that is the module itself: its digest is the module's sha256.
      writeFileSync(join(dir, "module.wasm"), wasm);
      sh(["skopeo", "standalone-sign", join(dir, "module.wasm"), "inline/add:v1", fpr, "-o", join(dir, "module.sig")]);
      const signature = readFileSync(join(dir, "module.sig")).toString("base64");
      const t = await runTask(s2.url, { name: "add", file, signature, inputs: [4, 5] }, 20_000);
      expect(t).toMatchObject({ state: 3, results: "9" });
      // The CLI's way: tasks create --signature FILE.
      const env = { PROPELLER_URL: s2.url, PROPELLER_TOKEN: s2.token ?? "" };
      const viaCli = cli(
        [
          "tasks",
          "create",
          "add",
          "--file",
          join(dir, "module.wasm"),
          "--signature",
          join(dir, "module.sig"),
          "--inputs",
          "7,8",
          "--start",
          "--wait",
        ],
        env,
      );
      expect(viaCli.stderr).toBe("");
      expect(viaCli.stdout).toContain("15");
      // An upload is judged as well: unsigned refused, with its signature accepted.
      const shell = await http(`${s2.url}/tasks`, "POST", { name: "add", image_url: "" });
      const upload = (withSig: boolean) => {
        const form = new FormData();
        form.append("file", new File([wasm], "add.wasm"));
        if (withSig) form.append("signature", new File([readFileSync(join(dir, "module.sig"))], "add.sig"));
        return fetch(`${s2.url}/tasks/${shell.body.id}/upload`, {
          method: "PUT",
          body: form,
          headers: { authorization: `Bearer ${s2.token}` },
        });
      };
      const noSig = await upload(false);
      expect(noSig.status).toBe(400);
      expect(((await noSig.json()) as { error: string }).error).toContain("requires a signature by key");
      expect((await upload(true)).status).toBe(200);
      const unsignedCli = cli(["tasks", "create", "add", "--file", join(dir, "module.wasm")], env);
      expect(unsignedCli.code).not.toBe(0);
      expect(unsignedCli.stderr).toContain("requires a signature by key");
      // The same signature on other bytes is refused.
      const other = await http(`${s2.url}/tasks`, "POST", {
        name: "y",
        file: readFileSync(join(FIXTURES, "hello.wasm")).toString("base64"),
        signature,
      });
      expect(other.status).toBe(400);
      expect(other.body.error).toContain("is for sha256:");
    } finally {
      await s2.kill("SIGKILL");
    }
  });

  test("serve refuses a bad policy file with a clear message", () => {
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys" }] }));
    const r = cli(["serve", "--trust-policy", join(dir, "bad.json"), "--http-port", "0", "--data-dir", tempDir()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("signedBy needs exactly one of keyPath, keyPaths, keyData");
    writeFileSync(
      join(dir, "nokey.json"),
      JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/nonexistent.gpg" }] }),
    );
    const r2 = cli(["serve", "--trust-policy", join(dir, "nokey.json"), "--http-port", "0", "--data-dir", tempDir()]);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain("keyPath /nonexistent.gpg: ENOENT");
    // From the config file too, named by where it came from.
    writeFileSync(join(dir, "serve.toml"), `[serve]\ntrust_policy = "${join(dir, "bad.json")}"\n`);
    const r3 = cli(["serve", "--config", join(dir, "serve.toml"), "--http-port", "0", "--data-dir", tempDir()]);
    expect(r3.code).not.toBe(0);
    expect(r3.stderr).toContain("signedBy needs exactly one of keyPath, keyPaths, keyData");
    expect(r3.stderr).toContain("trust_policy");
  });
});

describe("jobs and workflows", () => {
  test("a job or workflow naming an untrusted module is refused at creation, naming the task; nothing is created", async () => {
    push("signed");
    skopeoSign("signed");
    push("unsigned", "fib.wasm");
    const before = (await http(`${s.url}/tasks`)).body;
    const members = [
      { id: "a", name: "add", image_url: `${registry.host}/app:signed`, inputs: [1, 2] },
      { id: "b", name: "fib", image_url: `${registry.host}/app:unsigned`, inputs: [5], depends_on: ["a"] },
    ];
    const job = await http(`${s.url}/jobs`, "POST", { name: "mixed", tasks: members });
    expect(job.status).toBe(400);
    expect(job.body.error).toBe(
      `tasks[1].image_url: task b: ${registry.host}/app requires a signature by key ${fpr.slice(0, 4)}…${fpr.slice(-4)} (scope ${registry.host}/app); none found`,
    );
    const wf = await http(`${s.url}/workflows`, "POST", { name: "mixed", tasks: members });
    expect(wf.status).toBe(400);
    expect(wf.body.error).toContain("tasks[1].image_url: task b: ");
    expect((await http(`${s.url}/jobs`)).body.jobs ?? []).not.toContainEqual(
      expect.objectContaining({ name: "mixed" }),
    );
    expect((await http(`${s.url}/tasks/a`)).status).toBe(404);
    expect((await http(`${s.url}/tasks`)).body.total).toBe(before.total);
    // All trusted: created and run.
    const ok = await http(`${s.url}/jobs`, "POST", { name: "trusted", tasks: [members[0]] });
    expect(ok.status).toBe(201);
  });
});

describe("encrypted modules", () => {
  test("an encrypted, signed module runs; another signed one's ciphertext under its approved digest is refused before decryption", async () => {
    const keys = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    writeFileSync(join(dir, "enc-pub.pem"), keys.publicKey);
    writeFileSync(join(dir, "enc-key.pem"), keys.privateKey);
    const pushEnc = (tag: string, file: string) => {
      const r = cli([
        "push",
        join(FIXTURES, file),
        `${registry.host}/app:${tag}`,
        "--encrypt-recipient",
        `jwe:${join(dir, "enc-pub.pem")}`,
      ]);
      if (r.code !== 0) throw new Error(r.stderr);
      skopeoSign(tag);
    };
    pushEnc("enc", "add.wasm");
    pushEnc("enc-other", "fib.wasm");
    const holder = await spawnProplet(s, "key-holder", { PROPLET_DECRYPTION_KEYS: join(dir, "enc-key.pem") });
    try {
      await untilAlive(s.url, "key-holder");
      const ok = await runTask(
        s.url,
        {
          name: "add",
          image_url: `${registry.host}/app:enc`,
          encrypted: true,
          proplet_id: "key-holder",
          inputs: [3, 4],
        },
        20_000,
      );
      expect(ok).toMatchObject({ state: 3, results: "7" });

      // What the policy approved for app:enc: its manifest's (encrypted) layer. A start naming that digest but
      // fetching app:enc-other (signed too, so the proxy serves it: a moved tag, a rolled-back image) is refused
      // by the proplet, which holds a key that would open it.
      const manifest = (await (
        await fetch(`http://${registry.host}/v2/app/manifests/enc`, {
          headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
        })
      ).json()) as { layers: { digest: string }[] };
      const approved = manifest.layers[0]!.digest;
      const login = await identity(s.url, "manager", "rogue-manager");
      const rogue = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "rogue-manager", ...login });
      const T = "m/default/c/default";
      const results: Record<string, unknown>[] = [];
      await rogue.subscribeAsync(`${T}/control/proplet/results`, { qos: 1 });
      rogue.on("message", (_t, p) => results.push(JSON.parse(p.toString())));
      const start = {
        id: "substituted-enc",
        name: "fib",
        image_url: `${registry.host}/app:enc-other`,
        encrypted: true,
        inputs: [10],
        proplet_id: "key-holder",
        module_digest: approved,
      };
      await rogue.publishAsync(`${T}/control/manager/start`, JSON.stringify(start), { qos: 1 });
      const r = await until("the proplet's answer", () => results.find((x) => x.task_id === "substituted-enc"), 20_000);
      await rogue.endAsync();
      expect(r.error).toMatch(new RegExp(`^refused: the module's digest sha256:[a-f0-9]{64} is not ${approved}, `));
      expect(r.results).toBe("");
    } finally {
      await holder.kill("SIGKILL");
    }
  }, 40_000);
});
