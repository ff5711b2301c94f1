import { afterAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { unit } from "../../src/cli/install.ts";
import { b64, cli, freePort, type Serve, spawnPropeller, startServe, tempDir, until } from "../helpers.ts";
import { startMosquitto } from "../mosquitto.ts";
import { bindNotifySocket } from "../notify.ts";
import { startPostgres } from "../postgres.ts";

// Health that tells the truth, with real processes: /readyz fails with a reason while a part the manager needs is
// down (an external mosquitto, PostgreSQL) and /livez still answers; systemd's notification socket hears READY=1,
// WATCHDOG=1 and STOPPING=1; the unit verifies; SIGHUP reloads a renewed certificate and the log level.

const procs: { kill(signal?: NodeJS.Signals | number): unknown }[] = [];
afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
});

const get = async (url: string) => {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as any };
};

async function mosquitto(port: number) {
  const { proc } = await startMosquitto(port);
  procs.push(proc);
  return proc;
}

describe("readiness", () => {
  test("an external broker stopped: /readyz and /health 503 naming the broker, /livez 200; back when it returns", async () => {
    const port = await freePort();
    let m = await mosquitto(port);
    const s = await startServe({ extra: ["--mqtt-url", `mqtt://127.0.0.1:${port}`, "--no-local-proplet"] });
    procs.push(s);
    expect(await get(`${s.url}/readyz`)).toEqual({
      status: 200,
      body: {
        status: "pass",
        checks: [
          { name: "storage", status: "pass" },
          { name: "broker", status: "pass" },
        ],
      },
    });
    m.kill("SIGKILL");
    await m.exited;
    const down = await until("/readyz to fail", async () => {
      const r = await get(`${s.url}/readyz`);
      return r.status === 503 ? r : undefined;
    });
    expect(down.body.checks).toContainEqual({
      name: "broker",
      status: "fail",
      reason: "the manager is not connected to its MQTT broker",
    });
    const health = await get(`${s.url}/health`);
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: "fail", reasons: ["the manager is not connected to its MQTT broker"] });
    // Nothing internal to a caller without a token.
    expect(health.body.instance_id).toBeUndefined();
    expect(await get(`${s.url}/livez`)).toEqual({ status: 200, body: { status: "pass" } });
    // The CLI says why and exits 1.
    const h = cli(["health"], { PROPELLER_URL: s.url, PROPELLER_TOKEN: s.token ?? "" });
    expect({ code: h.code, stderr: h.stderr.trim() }).toEqual({
      code: 1,
      stderr: "error: GET /health: 503 not ready: the manager is not connected to its MQTT broker",
    });
    m = await mosquitto(port);
    await until("/readyz to pass again", async () => (await get(`${s.url}/readyz`)).status === 200, 10_000);
    expect(s.output()).toContain("not ready: the manager is not connected to its MQTT broker");
  });

  test("PostgreSQL down: the stand-by's and the active manager's /readyz 503, /livez 200; READY=1 from both", async () => {
    const pg = await startPostgres();
    procs.push({ kill: () => pg.stop().catch(() => {}) });
    const port = await freePort();
    await mosquitto(port);
    const dir = tempDir();
    const notify = [await bindNotifySocket(join(dir, "a.sock")), await bindNotifySocket(join(dir, "b.sock"))];
    const manager = (dataDir: string, sock: string) =>
      startServe({
        dataDir,
        extra: ["--storage", "postgres", "--mqtt-url", `mqtt://127.0.0.1:${port}`, "--no-local-proplet"],
        env: { PROPELLER_DB_URL: pg.url, NOTIFY_SOCKET: sock },
      });
    const a = await manager(tempDir(), notify[0]!.path);
    procs.push(a);
    const bDir = tempDir();
    copyFileSync(join(a.dataDir, "admin.token"), join(bDir, "admin.token"));
    const b = await manager(bDir, notify[1]!.path);
    procs.push(b);
    expect(await get(`${b.url}/readyz`)).toMatchObject({ status: 200, body: { status: "pass", role: "standby" } });
    const checks = (await get(`${a.url}/readyz`)).body.checks.map((c: { name: string }) => c.name);
    expect(checks).toEqual(["storage", "broker", "lease"]);
    await until("READY=1 from both", () => notify.every((n) => n.messages().some((x) => x.includes("READY=1"))));
    expect(notify[1]!.messages().find((x) => x.includes("READY=1"))).toContain("STATUS=stand-by");

    await pg.stop();
    // The active manager stops itself once its lease lapses (3 s): it must say it is not ready before that.
    const aDown = await until(
      "the active manager's /readyz to fail",
      async () => {
        const r = await get(`${a.url}/readyz`);
        return r.status === 503 ? r : undefined;
      },
      2500,
    );
    expect(aDown.body.checks).toContainEqual({
      name: "storage",
      status: "fail",
      reason: "the store cannot commit a write",
    });
    const bDown = await until("the stand-by's /readyz to fail", async () => {
      const r = await get(`${b.url}/readyz`);
      return r.status === 503 ? r : undefined;
    });
    expect(bDown.body).toMatchObject({ status: "fail", role: "standby" });
    expect(bDown.body.checks[0].reason).toBe("PostgreSQL does not answer: this stand-by cannot take over");
    const health = await get(`${b.url}/health`);
    expect(health).toMatchObject({ status: 503, body: { status: "fail", role: "standby" } });
    expect(await get(`${b.url}/livez`)).toEqual({ status: 200, body: { status: "pass" } });
    for (const n of notify) n.close();
  }, 60_000);
});

describe("systemd", () => {
  test("$NOTIFY_SOCKET hears READY=1, WATCHDOG=1 at half of WatchdogSec, STOPPING=1 on SIGTERM", async () => {
    const sock = await bindNotifySocket(join(tempDir(), "notify.sock"));
    const s = await startServe({ env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: "400000" } });
    procs.push(s);
    await until("READY=1", () => sock.messages().some((m) => m.startsWith("READY=1")));
    const t0 = sock.messages().filter((m) => m === "WATCHDOG=1").length;
    await Bun.sleep(1000);
    // Every 200 ms: about 5 in a second; at least 3 under load.
    expect(sock.messages().filter((m) => m === "WATCHDOG=1").length - t0).toBeGreaterThanOrEqual(3);
    await s.kill("SIGTERM");
    await until("STOPPING=1", () => sock.messages().includes("STOPPING=1"), 3000);
    sock.close();
  });

  test("a proplet says READY=1 once on its broker", async () => {
    const s = await startServe({ extra: ["--no-auth"] });
    procs.push(s);
    const sock = await bindNotifySocket(join(tempDir(), "notify.sock"));
    const p = spawnPropeller(["proplet"], {
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
      PROPLET_ENTITY_ID: "notified",
      NOTIFY_SOCKET: sock.path,
    });
    procs.push(p);
    await until("READY=1", () => sock.messages().some((m) => m === "READY=1\nSTATUS=on the MQTT broker"));
    sock.close();
  });

  test("the generated units are Type=notify with a watchdog, and systemd-analyze verifies them", () => {
    const analyze = Bun.which("systemd-analyze");
    if (!analyze) throw new Error("systemd-analyze is missing: apt-get install systemd (.ci/run does)");
    const root = tempDir("propeller-root-");
    // systemd-analyze needs the system's own units (sysinit.target…) and the executable in the root it checks.
    cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    mkdirSync(join(root, "usr/local/bin"), { recursive: true });
    writeFileSync(join(root, "usr/local/bin/propeller"), "#!/bin/sh\n", { mode: 0o755 });
    mkdirSync(join(root, "bin"), { recursive: true });
    copyFileSync("/bin/kill", join(root, "bin/kill"));
    mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
    for (const proplet of [false, true]) {
      const text = unit(proplet);
      for (const line of ["Type=notify", "WatchdogSec=30s", "ExecReload=/bin/kill -HUP $MAINPID"])
        expect(text).toContain(line);
      const file = join(root, "etc/systemd/system", proplet ? "propeller-proplet.service" : "propeller.service");
      writeFileSync(file, text);
      const v = Bun.spawnSync([analyze, "verify", `--root=${root}`, file]);
      const complaints = v.stderr
        .toString()
        .split("\n")
        .filter((l) => l.includes("propeller"));
      expect({ exit: v.exitCode, complaints }).toEqual({ exit: 0, complaints: [] });
    }
  });
});

/** The SHA-256 fingerprint of the certificate a new TLS connection to this port is shown. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false }, () => {
      resolve(c.getPeerX509Certificate()?.fingerprint256 ?? "");
      c.destroy();
    });
    c.on("error", reject);
  });
}

/** Two sites' certificates from `propeller certs create` (a renewal, as far as a TLS client can tell). */
function twoCertificates(): string[] {
  const made = [join(tempDir(), "one"), join(tempDir(), "two")];
  for (const dir of made) {
    const r = cli(["certs", "create", "--host", "localhost", "--host", "127.0.0.1", "--dir", dir]);
    if (r.code !== 0) throw new Error(`certs create failed: ${r.stderr}`);
  }
  return made;
}

const fingerprint = (dir: string) => new X509Certificate(readFileSync(join(dir, "server.pem"))).fingerprint256;

describe("SIGHUP", () => {
  test("a stand-by renews its certificate, and keeps the renewed one when it takes over", async () => {
    const pg = await startPostgres();
    procs.push({ kill: () => pg.stop().catch(() => {}) });
    const port = await freePort();
    await mosquitto(port);
    const made = twoCertificates();
    const manager = (dataDir: string, certs: string) =>
      startServe({
        dataDir,
        tlsCa: readFileSync(join(made[0]!, "ca.pem"), "utf8"),
        extra: [
          ...["--storage", "postgres", "--mqtt-url", `mqtt://127.0.0.1:${port}`, "--no-local-proplet"],
          ...["--tls-cert", join(certs, "server.pem"), "--tls-key", join(certs, "server.key")],
        ],
        env: { PROPELLER_DB_URL: pg.url },
      });
    const a = await manager(tempDir(), made[0]!);
    procs.push(a);
    const live = tempDir();
    for (const f of ["server.pem", "server.key"]) copyFileSync(join(made[0]!, f), join(live, f));
    const bDir = tempDir();
    copyFileSync(join(a.dataDir, "admin.token"), join(bDir, "admin.token"));
    const b = await manager(bDir, live);
    procs.push(b);
    expect(await peerFingerprint(b.httpPort)).toBe(fingerprint(made[0]!));
    for (const f of ["server.pem", "server.key"]) copyFileSync(join(made[1]!, f), join(live, f));
    b.proc.kill("SIGHUP");
    await until("the stand-by's reload", () => b.output().includes("SIGHUP: reloaded TLS certificate"));
    expect(await peerFingerprint(b.httpPort)).toBe(fingerprint(made[1]!));
    await a.kill("SIGKILL");
    await until("the stand-by to take over", () => b.output().includes("this manager is now active"), 15_000);
    await until("the active manager to serve", async () => (await peerFingerprint(b.httpPort).catch(() => "")) !== "");
    expect(await peerFingerprint(b.httpPort)).toBe(fingerprint(made[1]!));
  }, 60_000);

  test("a renewed certificate is shown to new HTTPS and MQTT-over-TLS connections; the log level follows the file", async () => {
    const made = twoCertificates();
    const live = tempDir();
    const put = (dir: string) => {
      for (const f of ["server.pem", "server.key"]) copyFileSync(join(dir, f), join(live, f));
    };
    put(made[0]!);
    const config = join(tempDir(), "config.toml");
    writeFileSync(config, `[serve]\nlog_level = "warn"\n`);
    const mqttTls = await freePort();
    const s: Serve = await startServe({
      tlsCa: readFileSync(join(made[0]!, "ca.pem"), "utf8"),
      extra: [
        ...["--config", config, "--mqtt-tls-port", String(mqttTls)],
        ...["--tls-cert", join(live, "server.pem"), "--tls-key", join(live, "server.key")],
      ],
    });
    procs.push(s);
    expect(await peerFingerprint(s.httpPort)).toBe(fingerprint(made[0]!));
    expect(await peerFingerprint(mqttTls)).toBe(fingerprint(made[0]!));
    put(made[1]!);
    writeFileSync(config, `[serve]\nlog_level = "debug"\npartition_grace = "60"\n`);
    s.proc.kill("SIGHUP");
    await until("the reload to be logged", () => s.output().includes("SIGHUP: reloaded"));
    expect(s.output()).toContain("log level warn → debug");
    expect(s.output()).toContain("TLS certificate and key");
    expect(s.output()).toContain("changed but needs a restart: partition-grace");
    expect(await peerFingerprint(s.httpPort)).toBe(fingerprint(made[1]!));
    expect(await peerFingerprint(mqttTls)).toBe(fingerprint(made[1]!));
    // The process still serves after the reload, and logs at debug now: a task's run start is a debug line.
    const api = (path: string, method = "GET", body?: unknown) =>
      fetch(`https://localhost:${s.httpPort}${path}`, {
        method,
        tls: { rejectUnauthorized: false },
        headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
        ...(body ? { body: JSON.stringify(body) } : {}),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    const t = await api("/tasks", "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
    expect((await api(`/tasks/${t.body.id}/start`, "POST")).status).toBe(200);
    await until("the run's debug line", () => s.output().includes(`run started task_id=${t.body.id}`), 10_000);
    // A file that no longer passes the checks changes nothing, and says so.
    writeFileSync(config, `[serve]\nlog_level = "loud"\n`);
    s.proc.kill("SIGHUP");
    await until("the refusal", () => s.output().includes("SIGHUP: settings not reloaded"));
    expect((await api("/livez")).status).toBe(200);
  }, 30_000);
});
