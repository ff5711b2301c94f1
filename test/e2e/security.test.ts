import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  b64,
  http,
  identity,
  MAIN,
  cli as runCli,
  runTask,
  type Serve,
  startServe,
  tempDir,
  until,
} from "../helpers.ts";

// Secure by default, seen from outside: a real serve process, real MQTT clients over TCP and WebSocket, the CLI.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const T = "m/default/c/default/control";

/** The CLI as a user on this machine runs it: no token unless one is given. */
const cli = (args: string[], env: Record<string, string>) =>
  runCli(args, { PROPELLER_TOKEN: "", PROPELLER_URL: s.url, ...env });

async function refused(url: string, opts: mqtt.IClientOptions): Promise<string> {
  try {
    const c = await mqtt.connectAsync(url, { ...opts, reconnectPeriod: 0, connectTimeout: 3000 });
    await c.endAsync();
    return "connected";
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** A proplet played by a raw MQTT client: it announces itself and records the start messages it gets. */
async function fakeProplet(id: string) {
  const login = await identity(s.url, "proplet", id);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: id, ...login, reconnectPeriod: 0 });
  const starts: { id: string }[] = [];
  c.on("message", (topic, payload) => {
    if (topic.endsWith("/manager/start")) starts.push(JSON.parse(payload.toString()));
  });
  await c.subscribeAsync(`${T}/manager/start`);
  await c.publishAsync(`${T}/proplet/create`, JSON.stringify({ proplet_id: id, metadata: { max_tasks: 1 } }));
  return { c, starts, login };
}

describe("REST and the CLI", () => {
  test("serve writes an admin token (0600) that the CLI on this machine finds; without it, a 401 says where", () => {
    const file = join(s.dataDir, "admin.token");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const found = cli(["tasks", "list"], { PROPELLER_DATA_DIR: s.dataDir });
    expect(found.code).toBe(0);
    const elsewhere = join(s.dataDir, "elsewhere");
    const missing = cli(["tasks", "list"], { PROPELLER_DATA_DIR: elsewhere });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("401");
    // serve's answer names the file, not its path on serve's disk; the CLI on this machine says where it looked.
    expect(missing.stderr).toContain("admin.token in serve's data dir");
    expect(missing.stderr).toContain(join(elsewhere, "admin.token"));
  });

  test("a viewer token from `tokens create` reads but may not create; revoked, it stops working", () => {
    const made = cli(["tokens", "create", "--role", "viewer", "--name", "watcher", "--json"], {
      PROPELLER_DATA_DIR: s.dataDir,
    });
    expect(made.code).toBe(0);
    const t = JSON.parse(made.stdout) as { id: string; token: string };
    expect(cli(["tasks", "list"], { PROPELLER_TOKEN: t.token }).code).toBe(0);
    const create = cli(["tasks", "create", "x", "--file", "test/fixtures/build/add.wasm"], {
      PROPELLER_TOKEN: t.token,
    });
    expect(create.code).toBe(1);
    expect(create.stderr).toContain("403");
    expect(cli(["tokens", "revoke", t.id], { PROPELLER_DATA_DIR: s.dataDir }).code).toBe(0);
    expect(cli(["tasks", "list"], { PROPELLER_TOKEN: t.token }).stderr).toContain("401");
  });

  test("a text/plain body is refused even when it claims JSON; a foreign Origin cannot open /mqtt", async () => {
    const res = await fetch(`${s.url}/tasks`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "text/plain; charset=application/json" },
      body: JSON.stringify({ name: "sneaky", file: b64("add"), schedule: "* * * * * *" }),
    });
    expect(res.status).toBe(400);
    const upgrade = (origin: string) =>
      fetch(`${s.url}/mqtt`, {
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          origin,
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      });
    expect((await upgrade("http://evil.example")).status).toBe(403);
    expect((await upgrade(s.url)).status).toBe(101);
  });

  test("--no-auth is refused with an address others can reach", () => {
    const p = Bun.spawnSync([process.execPath, MAIN, "serve", "--no-auth", "--host", "0.0.0.0", "--http-port", "0"]);
    expect(p.exitCode).toBe(1);
    expect(p.stderr.toString()).toContain("--no-auth is refused with --host 0.0.0.0");
  });
});

describe("MQTT", () => {
  test("anonymous clients and wrong keys are refused over TCP and WebSocket", async () => {
    const tcp = `mqtt://127.0.0.1:${s.mqttPort}`;
    const ws = `ws://127.0.0.1:${s.httpPort}/mqtt`;
    expect(await refused(tcp, { clientId: "anon" })).toContain("Not authorized");
    expect(await refused(ws, { clientId: "anon-ws" })).toContain("Not authorized");
    const login = await identity(s.url, "proplet", "keyed");
    expect(await refused(tcp, { clientId: "keyed", username: "keyed", password: "wrong" })).toContain("Not authorized");
    expect(await refused(tcp, { clientId: "keyed", ...login })).toBe("connected");
    expect(await refused(ws, { clientId: "keyed", ...login })).toBe("connected");
  });

  test("a proplet cannot finish another's task, stream its output, speak for it, or send start messages", async () => {
    const b = await fakeProplet("honest-b");
    const a = await fakeProplet("mallory-a");
    try {
      const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), proplet_id: "honest-b" });
      await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
      await until("b to get its start", () => b.starts.some((m) => m.id === c.body.id), 3000);
      // A result without proplet_id (as upstream's embedded proplet sends) is stamped with its sender: dropped.
      await a.c.publishAsync(`${T}/proplet/results`, JSON.stringify({ task_id: c.body.id, results: "evil" }));
      // Output from a proplet not running the task is dropped; the runner's own is kept.
      const out = (p: string, data: string) =>
        JSON.stringify({ task_id: c.body.id, proplet_id: p, seq: 0, stream: "stdout", data });
      await a.c.publishAsync(`${T}/proplet/output`, out("mallory-a", "forged line\n"));
      await b.c.publishAsync(`${T}/proplet/output`, out("honest-b", "real line\n"));
      await Bun.sleep(300);
      expect((await http(`${s.url}/tasks/${c.body.id}`)).body.state).toBe(2);
      expect((await http(`${s.url}/tasks/${c.body.id}/logs`)).body.chunks).toEqual([
        { seq: 0, stream: "stdout", data: "real line\n" },
      ]);
      // Claiming to be b, or sending a start, closes a's connection; b sees no forged start.
      const closed = new Promise<void>((resolve) => a.c.once("close", () => resolve()));
      a.c.publish(`${T}/manager/start`, JSON.stringify({ id: "forged", name: "x", proplet_id: "honest-b" }));
      await closed;
      const again = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "mallory-a", ...a.login });
      const closedAgain = new Promise<void>((resolve) => again.once("close", () => resolve()));
      again.publish(
        `${T}/proplet/results`,
        JSON.stringify({ task_id: c.body.id, proplet_id: "honest-b", results: "x" }),
      );
      await closedAgain;
      again.end(true);
      expect(b.starts.some((m) => m.id === "forged")).toBe(false);
      expect((await http(`${s.url}/tasks/${c.body.id}`)).body.state).toBe(2);
      // The real proplet's result completes it.
      await b.c.publishAsync(`${T}/proplet/results`, JSON.stringify({ task_id: c.body.id, results: "30" }));
      const done = await until("the task to complete", async () => {
        const t = (await http(`${s.url}/tasks/${c.body.id}`)).body;
        return t.state === 3 ? t : undefined;
      });
      expect(done.results).toBe("30");
    } finally {
      a.c.end(true);
      b.c.end(true);
    }
  });

  test("`proplets revoke` closes the proplet's connection at once and its key stops working", async () => {
    const p = await fakeProplet("revoked-one");
    const closed = new Promise<void>((resolve) => p.c.once("close", () => resolve()));
    const r = cli(["proplets", "revoke", "revoked-one"], { PROPELLER_DATA_DIR: s.dataDir });
    expect(r.code).toBe(0);
    await closed;
    p.c.end(true);
    const url = `mqtt://127.0.0.1:${s.mqttPort}`;
    expect(await refused(url, { clientId: "revoked-one", ...p.login })).toContain("Not authorized");
  });
});

describe("what a task may take from its proplet", () => {
  let n: Serve;
  let allowed: string;
  beforeAll(async () => {
    allowed = tempDir();
    writeFileSync(join(allowed, "in.txt"), "allowed\n");
    n = await startServe({
      extra: ["--liveliness-interval", "1"],
      env: { PROPLET_DIRS: allowed, PROPLET_MAX_TASK_MEMORY_MB: "64" },
    });
  });
  afterAll(async () => {
    await n?.kill("SIGKILL");
  });

  test("a host directory outside PROPLET_DIRS fails the task naming the allow-list; one inside works", async () => {
    const outside = tempDir();
    const denied = await runTask(n.url, {
      name: "cat",
      file: b64("cat"),
      inputs: ["/data/in.txt"],
      cli_args: [`--dir=${outside}::/data`],
    });
    expect(denied.state).toBe(4);
    expect(denied.error).toContain(`host directory ${outside} is not under PROPLET_DIRS (${allowed})`);
    const ok = await runTask(n.url, {
      name: "cat",
      file: b64("cat"),
      inputs: ["/data/in.txt"],
      cli_args: [`--dir=${allowed}::/data`],
    });
    expect(ok).toMatchObject({ state: 3, results: "allowed\n" });
  });

  test("a 4 GiB memory.grow loop stops at the cap and the proplet keeps heartbeating", async () => {
    const t = await runTask(n.url, { name: "grow", file: b64("grow") });
    expect(t).toMatchObject({ state: 3, results: "1009" }); // 64 MiB, grown 1 MiB at a time from 1 page
    // A task may ask for less than the proplet's cap, never more.
    const less = await runTask(n.url, { name: "grow", file: b64("grow"), max_memory_mb: 16 });
    expect(less.results).toBe("241");
    const more = await runTask(n.url, { name: "grow", file: b64("grow"), max_memory_mb: 1024 });
    expect(more.results).toBe("1009");
    const proplets = (await http(`${n.url}/proplets`)).body.proplets;
    expect(proplets.every((p: { alive: boolean }) => p.alive)).toBe(true);
  });
});
