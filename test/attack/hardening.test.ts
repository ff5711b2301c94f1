import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, statSync, watch, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { Writer } from "../../src/core/wasm-binary.ts";
import {
  authHeader,
  http,
  identity,
  type Serve,
  spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilEnded,
} from "../helpers.ts";

// Attacks on what modules cost, the data dir's files and self-reported claims (issue 25, items 6, 9 and 10),
// against real serve and proplet processes.

/**
 * A valid module of `n` functions () -> i32 (`main` is the first), each a loop of `ops` adds: code that takes the
 * instrumenter seconds (a big data section alone would be cheap to instrument).
 */
function bigModule(n: number, ops: number): Uint8Array {
  const body = new Writer();
  body.raw(Uint8Array.of(1, 2, 0x7f)); // two i32 locals
  body.raw(Uint8Array.of(0x03, 0x40)); // loop
  for (let i = 0; i < ops; i++) body.raw(Uint8Array.of(0x20, 0, 0x41, (i % 63) + 1, 0x6a, 0x21, 0)); // l0 += k
  body.raw(Uint8Array.of(0x20, 1, 0x41, 1, 0x6a, 0x22, 1, 0x41, 3, 0x48, 0x0d, 0)); // while (++l1 < 3)
  body.raw(Uint8Array.of(0x0b, 0x20, 0, 0x0b)); // end loop; l0; end
  const fn = body.finish();
  const m = new Writer();
  m.raw(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
  const section = (id: number, content: Uint8Array) => {
    m.byte(id);
    m.u32(content.length);
    m.raw(content);
  };
  section(1, Uint8Array.of(1, 0x60, 0, 1, 0x7f));
  const funcs = new Writer();
  funcs.u32(n);
  for (let i = 0; i < n; i++) funcs.u32(0);
  section(3, funcs.finish());
  section(7, Uint8Array.of(1, 4, 0x6d, 0x61, 0x69, 0x6e, 0, 0)); // export "main" = function 0
  const code = new Writer();
  code.u32(n);
  for (let i = 0; i < n; i++) {
    code.u32(fn.length);
    code.raw(fn);
  }
  section(10, code.finish());
  return m.finish();
}

/** What `main` of bigModule returns: three passes of the adds. */
function bigModuleResult(ops: number): number {
  let sum = 0;
  for (let i = 0; i < ops; i++) sum += (i % 63) + 1;
  return 3 * sum;
}

/** A process's resident memory in MiB. */
const rssMib = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

/** An MQTT connection of our own, logged in as `id`: PINGREQ → PINGRESP times the broker's answer. */
async function mqttPinger(port: number, id: string, password: string) {
  const sock: Socket = connect(port, "127.0.0.1");
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const waiting: ((cmd: string) => void)[] = [];
  parser.on("packet", (p) => waiting.shift()?.(p.cmd));
  sock.on("data", (d: Buffer) => parser.parse(d));
  const next = () => new Promise<string>((r) => waiting.push(r));
  await new Promise((r) => sock.once("connect", r));
  const connack = next();
  sock.write(
    mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      clientId: id,
      keepalive: 60,
      username: id,
      password: Buffer.from(password),
    }),
  );
  expect(await connack).toBe("connack");
  return {
    async ping(): Promise<number> {
      const t = performance.now();
      const resp = next();
      sock.write(Uint8Array.of(0xc0, 0));
      expect(await resp).toBe("pingresp");
      return performance.now() - t;
    },
    close: () => sock.destroy(),
  };
}

describe("modules: heavy work off the main thread, a size cap", () => {
  let s: Serve;
  const MAX_MB = 48;
  beforeAll(async () => {
    s = await startServe({ extra: ["--max-module-mb", String(MAX_MB)] });
  });
  afterAll(async () => {
    await s?.kill();
  });

  test("a 21 MB module is instrumented and compiled while /health and MQTT pings answer within 500 ms", async () => {
    const ops = 200;
    const wasm = bigModule(16_000, ops);
    expect(wasm.length).toBeGreaterThan(21e6);
    // Made before the probes start: this process's own work must not count as serve's delay.
    const body = JSON.stringify({ name: "main", file: Buffer.from(wasm).toString("base64") });
    const probe = await identity(s.url, "proplet", "probe");
    const pinger = await mqttPinger(s.mqttPort, probe.username, probe.password);
    const worst = { health: 0, ping: 0, probes: 0, rss: 0 };
    const rssBefore = rssMib(s.proc.pid);
    let probing = true;
    const probes = (async () => {
      while (probing) {
        const t = performance.now();
        expect((await fetch(`${s.url}/health`)).status).toBe(200);
        worst.health = Math.max(worst.health, performance.now() - t);
        worst.ping = Math.max(worst.ping, await pinger.ping());
        worst.probes++;
        worst.rss = Math.max(worst.rss, rssMib(s.proc.pid));
        await Bun.sleep(50);
      }
    })();
    const t0 = performance.now();
    const created = await http(`${s.url}/tasks`, "POST", body);
    expect(created.status).toBe(201);
    expect((await http(`${s.url}/tasks/${created.body.id}/start`, "POST")).status).toBe(200);
    const done = await untilEnded(s.url, created.body.id, "the big module's task", 60_000);
    const took = performance.now() - t0;
    probing = false;
    await probes;
    pinger.close();
    console.log(
      `${(wasm.length / 1e6).toFixed(1)} MB module: ${(took / 1000).toFixed(1)} s to run; worst /health ${worst.health.toFixed(0)} ms, ` +
        `worst MQTT ping ${worst.ping.toFixed(0)} ms over ${worst.probes} probes; serve RSS ${rssBefore.toFixed(0)} MiB ` +
        `before, ${worst.rss.toFixed(0)} MiB at most, ${rssMib(s.proc.pid).toFixed(0)} MiB after`,
    );
    expect(done.status).toBe("Completed");
    expect(done.results).toBe(String(bigModuleResult(ops)));
    // The attack is real only if the processing took long enough to be seen.
    expect(took).toBeGreaterThan(1500);
    expect(worst.probes).toBeGreaterThan(10);
    // 500 ms on an idle machine; on a loaded one what is left on the main thread (parsing, hashing and storing
    // the module once) stretches too, but stays a small part of the run: compiled there, the stall was nearly all
    // of it (4.9 s of 5.4 s).
    const bound = Math.max(500, took / 4);
    expect(worst.health).toBeLessThan(bound);
    expect(worst.ping).toBeLessThan(bound);
  }, 90_000);

  test("a module over the cap is refused: at create naming `file`, at the proplet as a failed task", async () => {
    // Inline: valid base64 that starts as a module; refused by its size before anything is decoded.
    const file = `AGFzbQEAAAA${"A".repeat(Math.ceil(((MAX_MB + 1) * 1024 * 1024 * 4) / 3))}`;
    const refused = await http(`${s.url}/tasks`, "POST", { name: "main", file });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatch(
      new RegExp(
        `^file: the module is ${MAX_MB + 1}\\.0 MiB, over the limit of ${MAX_MB} MiB \\(serve --max-module-mb\\)`,
      ),
    );
    // By URL: the manager cannot see its size; the proplet refuses it as it downloads, and the task fails saying so.
    const big = new Uint8Array((MAX_MB + 2) * 1024 * 1024);
    big.set([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
    const site = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => new Response(big, { headers: { "content-type": "application/wasm" } }),
    });
    try {
      const created = await http(`${s.url}/tasks`, "POST", {
        name: "main",
        image_url: `http://127.0.0.1:${site.port}/big.wasm`,
      });
      expect(created.status).toBe(201);
      await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
      const t = await untilEnded(s.url, created.body.id, "the over-cap task to fail", 30_000);
      expect(t.status).toBe("Failed");
      expect(t.error).toContain(`over the limit of ${MAX_MB} MiB (serve --max-module-mb)`);
    } finally {
      site.stop(true);
    }
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  }, 60_000);
});

/**
 * A provisioned proplet that announces itself with claims it has no evidence for (a GPU label and a SEV TEE) over
 * a real MQTT connection, and keeps heartbeating; it never runs what it is sent.
 */
async function liar(s: Serve, id: string) {
  const login = await identity(s.url, "proplet", id);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: id, ...login, reconnectPeriod: 0 });
  const base = "m/default/c/default/control/proplet";
  const metadata = { tags: ["gpu=true"], tee: "sev", max_tasks: 4, liveliness_interval_s: 1, run_ids: true };
  await c.publishAsync(`${base}/create`, JSON.stringify({ proplet_id: id, namespace: "default", metadata }), {
    qos: 1,
  });
  const beat = () =>
    c.publish(`${base}/alive`, JSON.stringify({ proplet_id: id, status: "alive", namespace: "default" }));
  const timer = setInterval(beat, 500);
  await until(`${id} to be alive`, async () => (await http(`${s.url}/proplets/${id}`)).body?.alive === true);
  return {
    close: () => {
      clearInterval(timer);
      c.end(true);
    },
  };
}

/** Creates and starts a task needing a GPU label and a SEV TEE; its id. */
async function gpuTeeTask(s: Serve): Promise<string> {
  const created = await http(`${s.url}/tasks`, "POST", {
    name: "main",
    file: Buffer.from(bigModule(1, 1)).toString("base64"),
    requirements: { labels: { gpu: "true" }, tee: "sev" },
  });
  expect(created.status).toBe(201);
  expect((await http(`${s.url}/tasks/${created.body.id}/start`, "POST")).status).toBe(200);
  return created.body.id;
}

describe("claims: what a proplet says of itself is not evidence", () => {
  test("claimed gpu=true and tee=sev attract nothing; the operator's labels do", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const p = await liar(s, "liar");
    try {
      const id = await gpuTeeTask(s);
      await Bun.sleep(1000); // heartbeats and placement rounds come and go
      const waiting = (await http(`${s.url}/tasks/${id}`)).body;
      expect(waiting.status).toBe("Scheduled");
      expect(waiting.waiting_reason).toContain(
        "lacks label gpu=true (it claims gpu=true itself: self-reported, not trusted: set it on its identity, or serve --trust-proplet-labels)",
      );
      // A label alone is not enough: the TEE too is only its word.
      const labelled = await http(`${s.url}/entities/liar/labels`, "PUT", { labels: { gpu: "true" } });
      expect(labelled.status).toBe(200);
      await until("the reason to move on to the TEE", async () =>
        (await http(`${s.url}/tasks/${id}`)).body.waiting_reason?.includes("lacks TEE sev (it reports TEE sev itself"),
      );
      // The operator vouches for both: now it gets the task.
      expect((await http(`${s.url}/entities/liar/labels`, "PUT", { labels: { gpu: "true", tee: "sev" } })).status).toBe(
        200,
      );
      const running = await until("the task to be placed on liar", async () => {
        const t = (await http(`${s.url}/tasks/${id}`)).body;
        return t.state === 2 && t;
      });
      expect(running.proplet_id).toBe("liar");
      // Labels go on proplet identities only.
      const bad = await http(`${s.url}/entities`, "POST", { kind: "proxy", labels: { gpu: "true" } });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toContain("labels");
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    } finally {
      p.close();
      await s.kill();
    }
  }, 30_000);

  test("with --trust-proplet-labels the same claims are taken", async () => {
    const s = await startServe({ extra: ["--no-local-proplet", "--trust-proplet-labels"] });
    const p = await liar(s, "liar");
    try {
      const id = await gpuTeeTask(s);
      const running = await until("the task to be placed on liar", async () => {
        const t = (await http(`${s.url}/tasks/${id}`)).body;
        return t.state === 2 && t;
      });
      expect(running.proplet_id).toBe("liar");
    } finally {
      p.close();
      await s.kill();
    }
  }, 30_000);
});

/** Every file and folder under `dir` that group or others may use, with its mode. */
function openToOthers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const mode = statSync(d).mode & 0o777;
    if (mode & 0o077) out.push(`${d} ${mode.toString(8)}`);
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.isFile() && statSync(path).mode & 0o077)
        out.push(`${path} ${(statSync(path).mode & 0o777).toString(8)}`);
    }
  };
  walk(dir);
  return out;
}

describe("files: the data dir and backups are the owner's only", () => {
  test("an existing 0755 data dir with 0644 database files is made private; new files are 0600", async () => {
    const dir = join(tempDir(), "site");
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    let s = await startServe({ dataDir: dir });
    await s.kill();
    // As an older serve (umask 022) or a careless copy left it.
    chmodSync(dir, 0o755);
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
    expect(openToOthers(dir).length).toBeGreaterThan(2);
    s = await startServe({ dataDir: dir });
    try {
      expect(openToOthers(dir)).toEqual([]);
      expect(s.output()).toMatch(/data dir .* \(mode 755\): \d+ item\(s\) were open to other users, now private/);
      expect(readdirSync(dir)).toContain("propeller.db");
    } finally {
      await s.kill();
    }
  }, 30_000);

  test("a data dir another user owns is refused, naming the owner", async () => {
    if (process.getuid?.() !== 0) return; // only root can give a dir away
    const dir = join(tempDir(), "theirs");
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    const p = spawnPropeller(["serve", "--data-dir", dir, "--http-port", "0", "--mqtt-port", "0"]);
    const exited = await Promise.race([p.proc.exited, Bun.sleep(15_000).then(() => "still running")]);
    await p.kill("SIGKILL");
    expect(exited).not.toBe(0);
    expect(exited).not.toBe("still running");
    expect(p.output()).toContain(`--data-dir ${dir} belongs to uid 65534, not to this process (uid 0)`);
  }, 30_000);

  test("a proplet's state dir is tightened too", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const state = join(tempDir(), "proplet");
    mkdirSync(join(state, "outbox"), { recursive: true });
    chmodSync(state, 0o755);
    chmodSync(join(state, "outbox"), 0o755);
    writeFileSync(join(state, "offline.json"), '{"from":"2026-01-01T00:00:00Z"}', { mode: 0o644 });
    const p = await spawnProplet(s, "tidy", { PROPLET_DATA_DIR: state });
    try {
      await until("the proplet to be alive", async () => (await http(`${s.url}/proplets/tidy`)).body?.alive === true);
      expect(openToOthers(state)).toEqual([]);
    } finally {
      await p.kill();
      await s.kill();
    }
  }, 30_000);

  test("POST /backup leaves no copy of the database in /tmp, and none behind in the data dir", async () => {
    const s = await startServe();
    const seen: string[] = [];
    const watcher = watch(tmpdir(), (_, name) => {
      if (name && /backup|propeller-copy/i.test(String(name))) seen.push(String(name));
    });
    try {
      expect(
        (await http(`${s.url}/tasks`, "POST", { name: "kept", file: Buffer.from(bigModule(1, 1)).toString("base64") }))
          .status,
      ).toBe(201);
      const res = await fetch(`${s.url}/backup`, { method: "POST", headers: authHeader(s.url) });
      expect(res.status).toBe(200);
      // The portable archive (storage/archive.ts), streamed from one read: no file on the way.
      const text = await res.text();
      expect(JSON.parse(text.split("\n")[0]!)).toMatchObject({ format: expect.stringContaining("propeller") });
      expect(text).toContain("kept");
      await Bun.sleep(200); // inotify events arrive after the fact
      expect(seen).toEqual([]);
      expect(readdirSync(s.dataDir).filter((f) => f.includes("backup") || f.includes("copy"))).toEqual([]);
      expect(openToOthers(s.dataDir)).toEqual([]);
    } finally {
      watcher.close();
      await s.kill();
    }
  }, 30_000);
});
