import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { encryptLayer, wrapEncrypted } from "../../src/core/ocicrypt.ts";
import { cli, FIXTURES, http, identity, type Serve, startServe, tempDir, until } from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// Trusted code attacked (docs/ARCHITECTURE.md, "Trusted code"): a proplet asks the proxy for an image the policy
// refuses, on a registry the allow-list names (so only the policy stands in the way); a peer with a manager's
// identity sends a start whose approved digest is not the module's bytes.

const T = "m/default/c/default";
const dir = tempDir("trust-attack-");
let registry: Registry;
let s: Serve;
let attacker: mqtt.MqttClient;
const answers: Record<string, unknown>[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  const pushed = cli(["push", join(FIXTURES, "add.wasm"), `${registry.host}/app:unsigned`]);
  expect(pushed.code).toBe(0);
  // A key nobody signed with: every image of the registry is unsigned for this policy.
  const GNUPGHOME = join(dir, "gnupg");
  mkdirSync(GNUPGHOME, { mode: 0o700 });
  const env = { ...process.env, GNUPGHOME };
  Bun.spawnSync(
    ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "K <k@example.com>", "default", "default", "never"],
    { env },
  );
  writeFileSync(join(dir, "key.gpg"), Bun.spawnSync(["gpg", "--armor", "--export"], { env }).stdout);
  // One inline module signed with it (the trusted members of a workflow), as skopeo signs a module.
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(
    Bun.spawnSync(["gpg", "--with-colons", "--list-keys"], { env }).stdout.toString(),
  )![1]!;
  Bun.spawnSync(
    ["skopeo", "standalone-sign", join(FIXTURES, "add.wasm"), "inline/add:v1", fpr, "-o", join(dir, "add.sig")],
    { env },
  );
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: join(dir, "key.gpg") }] }),
  );
  s = await startServe({
    extra: [
      "--trust-policy",
      join(dir, "policy.json"),
      "--registries-d",
      join(dir, "none"),
      "--registry-allow",
      registry.host,
    ],
  });
  const login = await identity(s.url, "proplet", "attacker");
  attacker = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "attacker", ...login });
  await attacker.subscribeAsync(`${T}/registry/server`, { qos: 1 });
  attacker.on("message", (_t, p) => answers.push(JSON.parse(p.toString())));
}, 30_000);

afterAll(async () => {
  await attacker?.endAsync();
  await s?.kill("SIGKILL");
  registry?.proc.kill("SIGKILL");
  // gpg left its agent running for this home.
  Bun.spawnSync(["gpgconf", "--kill", "gpg-agent"], { env: { ...process.env, GNUPGHOME: join(dir, "gnupg") } });
});

describe("trust policy attacks", () => {
  test("a proplet cannot get an unapproved image's chunks from the proxy, even from an allowed registry", async () => {
    const app = `${registry.host}/app:unsigned`;
    await attacker.publishAsync(`${T}/registry/proplet`, JSON.stringify({ app_name: app, proplet_id: "attacker" }), {
      qos: 1,
    });
    const a = await until("an answer", () => answers.find((x) => x.app_name === app), 15_000, 20);
    expect(a.error).toContain("refused by the trust policy: ");
    expect(a.error).toContain("requires a signature by key");
    await Bun.sleep(300);
    expect(answers.filter((x) => x.app_name === app && "data" in x)).toEqual([]);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  test("a start whose approved digest is not the module's bytes is refused by the proplet", async () => {
    const proplets = (await http(`${s.url}/proplets`)).body;
    const local = (proplets.proplets ?? proplets)[0];
    const login = await identity(s.url, "manager", "rogue-manager");
    const rogue = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "rogue-manager", ...login });
    const results: Record<string, unknown>[] = [];
    await rogue.subscribeAsync(`${T}/control/proplet/results`, { qos: 1 });
    rogue.on("message", (_t, p) => results.push(JSON.parse(p.toString())));
    const approved = `sha256:${createHash("sha256")
      .update(readFileSync(join(FIXTURES, "hello.wasm")))
      .digest("hex")}`;
    const start = {
      id: "swapped-module",
      name: "add",
      file: readFileSync(join(FIXTURES, "add.wasm")).toString("base64"),
      inputs: [1, 2],
      proplet_id: local.id,
      module_digest: approved,
    };
    await rogue.publishAsync(`${T}/control/manager/start`, JSON.stringify(start), { qos: 1 });
    const r = await until("the proplet's answer", () => results.find((x) => x.task_id === "swapped-module"), 15_000);
    expect(r.error).toContain(`is not ${approved}, the one the trust policy approved`);
    expect(r.results).toBe("");
    await rogue.endAsync();
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });
});

describe("encrypted modules", () => {
  test("another ciphertext under an encrypted module's approved digest is refused before anything decrypts it", async () => {
    const proplets = (await http(`${s.url}/proplets`)).body;
    const local = (proplets.proplets ?? proplets)[0];
    const login = await identity(s.url, "manager", "rogue-enc");
    const rogue = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "rogue-enc", ...login });
    const results: Record<string, unknown>[] = [];
    await rogue.subscribeAsync(`${T}/control/proplet/results`, { qos: 1 });
    rogue.on("message", (_t, p) => results.push(JSON.parse(p.toString())));
    const { publicKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const seal = (file: string) => {
      const e = encryptLayer(readFileSync(join(FIXTURES, file)), [publicKey]);
      return {
        ...e,
        envelope: wrapEncrypted(e.data, { mediaType: "application/wasm+encrypted", annotations: e.annotations }),
      };
    };
    const approved = `sha256:${createHash("sha256").update(seal("add.wasm").data).digest("hex")}`;
    const start = {
      id: "swapped-ciphertext",
      name: "fib",
      file: Buffer.from(seal("fib.wasm").envelope).toString("base64"),
      encrypted: true,
      inputs: [5],
      proplet_id: local.id,
      module_digest: approved,
    };
    await rogue.publishAsync(`${T}/control/manager/start`, JSON.stringify(start), { qos: 1 });
    const r = await until(
      "the proplet's answer",
      () => results.find((x) => x.task_id === "swapped-ciphertext"),
      15_000,
    );
    await rogue.endAsync();
    // The digest is what refused it, not a missing key: nothing was decrypted.
    expect(r.error).toContain(`is not ${approved}, the one the trust policy approved`);
    expect(r.results).toBe("");
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });
});

describe("groups", () => {
  test("a workflow smuggling an unsigned module among signed ones is refused whole, naming the task", async () => {
    const signed = {
      name: "add",
      file: readFileSync(join(FIXTURES, "add.wasm")).toString("base64"),
      signature: readFileSync(join(dir, "add.sig")).toString("base64"),
      inputs: [1, 2],
    };
    const smuggled = { id: "payload", name: "fib", file: readFileSync(join(FIXTURES, "fib.wasm")).toString("base64") };
    const before = (await http(`${s.url}/tasks`)).body.total;
    const wf = await http(`${s.url}/workflows`, "POST", {
      tasks: [
        { ...signed, id: "first" },
        { ...smuggled, depends_on: ["first"] },
        { ...signed, id: "last", depends_on: ["payload"] },
      ],
    });
    expect(wf.status).toBe(400);
    expect(wf.body.error).toContain("tasks[1].file: task payload: an inline module requires a signature by key");
    // The same signature lent to the smuggled module does not cover its bytes.
    const lent = await http(`${s.url}/jobs`, "POST", {
      name: "lent",
      tasks: [signed, { ...smuggled, signature: signed.signature }],
    });
    expect(lent.status).toBe(400);
    expect(lent.body.error).toContain("tasks[1].file: task payload: an inline module: the signature by key");
    expect((await http(`${s.url}/tasks`)).body.total).toBe(before);
    expect((await http(`${s.url}/tasks/first`)).status).toBe(404);
    // The signed members alone are a workflow.
    expect((await http(`${s.url}/workflows`, "POST", { tasks: [signed] })).status).toBe(201);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });
});
