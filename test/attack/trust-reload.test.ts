import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  b64,
  cli,
  FIXTURES,
  http,
  identity,
  MAIN,
  runTask,
  type Serve,
  spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
} from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// The trust policy under SIGHUP (docs/ARCHITECTURE.md, "Trusted code"): serve, a proplet and the proxy alone read
// it again; a garbage or hostile file (not JSON, a key "file" that is /dev/zero) keeps the running policy, so a
// bad write cannot open the site. And the proxy alone, under its own policy, sends no chunk of a refused image.

const T = "m/default/c/default";
const dir = tempDir("trust-reload-");
const OPEN = JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] });
const REJECT = JSON.stringify({ default: [{ type: "reject" }] });
const HOSTILE = [
  "{ not json",
  JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/dev/zero" }] }),
  JSON.stringify({ default: [] }),
];
let s: Serve;

beforeAll(async () => {
  writeFileSync(join(dir, "serve.json"), OPEN);
  s = await startServe({ extra: ["--trust-policy", join(dir, "serve.json")] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const create = () => http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") });

describe("serve", () => {
  test("SIGHUP puts a new policy in force at once; a garbage or hostile file keeps the running one", async () => {
    expect((await create()).status).toBe(201);
    writeFileSync(join(dir, "serve.json"), REJECT);
    s.proc.kill("SIGHUP");
    const refused = await until("the new policy", async () => {
      const r = await create();
      return r.status === 400 ? r : undefined;
    });
    expect(refused.body.error).toBe("file: an inline module is rejected (scope default)");
    for (const [i, text] of HOSTILE.entries()) {
      writeFileSync(join(dir, "serve.json"), text);
      s.proc.kill("SIGHUP");
      await until(
        "the refusal to reload",
        () => s.output().split("trust policy not reloaded, the running one").length > i + 1,
      );
      expect((await create()).status).toBe(400);
    }
    expect(s.output()).toContain("not JSON");
    expect(s.output()).toContain("keyPath /dev/zero: not a regular file");
    expect(s.output()).toContain("a scope needs at least one requirement");
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    // Still reloadable afterwards.
    writeFileSync(join(dir, "serve.json"), OPEN);
    s.proc.kill("SIGHUP");
    await until("the open policy again", async () => (await create()).status === 201);
  }, 30_000);
});

describe("a proplet", () => {
  test("SIGHUP reads PROPLET_TRUST_POLICY again; a garbage file keeps the running one", async () => {
    writeFileSync(join(dir, "proplet.json"), OPEN);
    const p = await spawnProplet(s, "reloading", { PROPLET_TRUST_POLICY: join(dir, "proplet.json") });
    try {
      await untilAlive(s.url, "reloading");
      const run = () => runTask(s.url, { name: "add", file: b64("add"), inputs: [1, 2], proplet_id: "reloading" });
      expect((await run()).results).toBe("3");
      writeFileSync(join(dir, "proplet.json"), REJECT);
      p.proc.kill("SIGHUP");
      await until("the proplet's reload", () => p.output().includes("trust policy") && p.output().includes("reloaded"));
      const refused = await run();
      expect(refused.error).toBe(
        "refused by this proplet's trust policy: an inline module is rejected (scope default)",
      );
      writeFileSync(join(dir, "proplet.json"), HOSTILE[0]!);
      p.proc.kill("SIGHUP");
      await until("the refusal to reload", () => p.output().includes("trust policy not reloaded"));
      expect((await run()).error).toContain("is rejected (scope default)");
      expect(p.proc.exitCode).toBeNull();
    } finally {
      await p.kill("SIGKILL");
    }
  }, 30_000);
});

describe("propeller proxy alone", () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
    expect(cli(["push", join(FIXTURES, "add.wasm"), `${registry.host}/app:v1`]).code).toBe(0);
  });
  afterAll(() => registry?.proc.kill("SIGKILL"));

  test("a bad --trust-policy stops it with the reason", () => {
    const bad = Bun.spawnSync([process.execPath, MAIN, "proxy", "--trust-policy", join(dir, "absent.json")]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.toString()).toContain(`--trust-policy: trust policy ${join(dir, "absent.json")}: ENOENT`);
  });

  test("sends no chunk of an image its policy refuses, from an allowed registry; SIGHUP reads the policy again", async () => {
    // serve without its own proxy: the one alone answers.
    const bare = await startServe({ extra: ["--no-proxy"] });
    writeFileSync(join(dir, "proxy.json"), REJECT);
    const login = await identity(bare.url, "proxy", "alone");
    const proxy = spawnPropeller(
      [
        "proxy",
        "--mqtt-url",
        `mqtt://127.0.0.1:${bare.mqttPort}`,
        "--data-dir",
        tempDir(),
        "--registry-allow",
        registry.host,
        "--trust-policy",
        join(dir, "proxy.json"),
      ],
      { PROXY_ENTITY_ID: login.username, PROXY_API_KEY: login.password },
    );
    const answers: Record<string, unknown>[] = [];
    const asker = await mqtt.connectAsync(`mqtt://127.0.0.1:${bare.mqttPort}`, {
      clientId: "asker",
      ...(await identity(bare.url, "proplet", "asker")),
    });
    try {
      await until("the standalone proxy to subscribe", () => proxy.output().includes("OCI proxy on"), 10_000);
      expect(proxy.output()).toContain("under trust policy");
      await asker.subscribeAsync(`${T}/registry/server`, { qos: 1 });
      asker.on("message", (_t, p) => answers.push(JSON.parse(p.toString())));
      const app = `${registry.host}/app:v1`;
      const ask = () =>
        asker.publishAsync(`${T}/registry/proplet`, JSON.stringify({ app_name: app, proplet_id: "asker" }), { qos: 1 });
      await ask();
      const a = await until("an answer", () => answers.find((x) => x.app_name === app), 15_000);
      expect(a.error).toBe(`refused by the trust policy: ${registry.host}/app is rejected (scope default)`);
      await Bun.sleep(300);
      expect(answers.filter((x) => "data" in x)).toEqual([]);
      // A garbage file: still refused.
      writeFileSync(join(dir, "proxy.json"), HOSTILE[1]!);
      proxy.proc.kill("SIGHUP");
      await until("the refusal to reload", () => proxy.output().includes("trust policy not reloaded"));
      answers.length = 0;
      await ask();
      expect((await until("an answer", () => answers.find((x) => x.app_name === app), 15_000)).error).toContain(
        "is rejected",
      );
      // The site opens the policy: the same request gets its chunks.
      writeFileSync(join(dir, "proxy.json"), OPEN);
      proxy.proc.kill("SIGHUP");
      await until("the reload", () => proxy.output().includes(`trust policy ${join(dir, "proxy.json")} reloaded`));
      answers.length = 0;
      await ask();
      const chunk = await until("a chunk", () => answers.find((x) => x.app_name === app), 15_000);
      expect(chunk.error).toBeUndefined();
      expect(typeof chunk.data).toBe("string");
      expect(proxy.proc.exitCode).toBeNull();
      expect((await fetch(`${bare.url}/health`)).status).toBe(200);
    } finally {
      await asker.endAsync();
      await proxy.kill("SIGKILL");
      await bare.kill("SIGKILL");
    }
  }, 40_000);
});
