import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  cli,
  FIXTURES,
  http,
  identity,
  runTask,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
} from "../helpers.ts";
import {
  dir,
  fpr,
  push,
  registriesD,
  registry,
  s,
  sh,
  skopeoSign,
  startTrustSite,
  stopTrustSite,
} from "../trust-site.ts";

// Only trusted code runs, continued from trust.test.ts (same site: test/trust-site.ts): inline modules and their
// detached signatures, policies that do not load, jobs and workflows judged member by member, encrypted modules.

beforeAll(startTrustSite);
afterAll(stopTrustSite);

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

      // An FL experiment's inline module: refused without its signature, and nothing is kept (it stayed "running"
      // for ever with no tasks, its id refused as running; then a failed one was kept, a round more each retry);
      // with `signature`, its round runs.
      const local = (await http<{ proplets: { id: string }[] }>(`${s2.url}/proplets`)).body.proplets[0]!.id;
      const experiment = { experiment_id: "signed-fl", participants: [local], task_file: file, timeout_s: 30 };
      const unsignedFl = await http(`${s2.url}/fl/experiments`, "POST", experiment);
      expect(unsignedFl.status).toBe(400);
      expect(unsignedFl.body.error).toContain("requires a signature by key");
      expect((await http(`${s2.url}/fl/experiments/signed-fl`)).status).toBe(404);
      expect((await http(`${s2.url}/fl/experiments`, "POST", experiment)).status).toBe(400);
      expect((await http(`${s2.url}/fl/experiments/signed-fl`)).status).toBe(404);
      // A misspelt field is refused, not dropped.
      const typo = await http(`${s2.url}/fl/experiments`, "POST", { ...experiment, stratgy: "median" });
      expect(typo.status).toBe(400);
      expect(typo.body.error).toBe("stratgy: not a field (did you mean strategy?)");
      // A signature that is not base64 is refused naming it (it failed deep in the round's task: 500).
      const garbled = await http(`${s2.url}/fl/experiments`, "POST", { ...experiment, signature: "!!" });
      expect(garbled.status).toBe(400);
      expect(garbled.body.error).toContain("signature: must be standard base64");
      const signedFl = await http(`${s2.url}/fl/experiments`, "POST", { ...experiment, signature });
      expect(signedFl.status).toBe(200);
      const rounds = (await http(`${s2.url}/fl/experiments/signed-fl`)).body.round_list;
      expect(rounds).toHaveLength(1);
      expect(Object.keys(rounds[0].tasks)).toEqual([local]);
      await http(`${s2.url}/fl/experiments/signed-fl/stop`, "POST");
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
    // The signer's secret key where the public one belongs: refused, saying how to export the public one.
    writeFileSync(
      join(dir, "secret.json"),
      JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "signer.asc") }] }),
    );
    const r4 = cli(["serve", "--trust-policy", join(dir, "secret.json"), "--http-port", "0", "--data-dir", tempDir()]);
    expect(r4.code).not.toBe(0);
    expect(r4.stderr).toContain("a secret key; give its public key instead (gpg --export --armor FINGERPRINT)");
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

test("verify names an image_url that is no registry reference as what it is, not as an inline module", () => {
  const policy = join(tempDir(), "reject.json");
  writeFileSync(policy, JSON.stringify({ default: [{ type: "reject" }] }));
  const said = (ref: string) => cli(["verify", ref, "--trust-policy", policy]);
  const url = said("http://127.0.0.1:9/x.wasm");
  expect(url.code).toBe(1);
  expect(url.stdout).toBe(
    "refused: http://127.0.0.1:9/x.wasm (an http(s) URL: it carries no signatures) is rejected (scope default)\n",
  );
  expect(said("docker://127.0.0.1:5000/app:1").stdout).toContain(
    'docker://127.0.0.1:5000/app:1 (not a registry reference: invalid repository name "/127.0.0.1:5000/app")',
  );
  expect(said("reg:5000/apps/x:1#frag").stdout).toContain('(not a registry reference: invalid tag "1#frag")');
});
