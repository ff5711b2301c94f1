import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../cli-run.ts";
import {
  freePort,
  propletEnv,
  ROOT,
  type Serve,
  spawnProplet,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";
import { startMosquitto } from "../mosquitto.ts";
import { startPostgres } from "../postgres.ts";

// The CLI as an operator meets it: a stand-by's 503 during a hand-over, id prefixes, `--json` errors, and no
// process left behind when a launcher (npx, npm start) is sent SIGTERM.
// proplets cordon | uncordon | drain: cli-drain.test.ts.

describe("503 with Retry-After (a stand-by during a hand-over)", () => {
  /** A stand-by with no active manager yet: 503 + Retry-After `busy` times, then the answer. */
  function fakeStandby(busy: number, opts: { retryAfter?: string; notActed?: boolean } = {}) {
    const seen: string[] = [];
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        seen.push(`${req.method} ${new URL(req.url).pathname}`);
        if (seen.length <= busy) {
          const headers: Record<string, string> = { "retry-after": opts.retryAfter ?? "1" };
          if (opts.notActed) headers["propeller-not-acted"] = "true";
          return Response.json({ error: "no active manager right now; retry" }, { status: 503, headers });
        }
        return Response.json({ offset: 0, limit: 100, total: 0, proplets: [] });
      },
    });
    return { url: `http://127.0.0.1:${server.port}`, seen, stop: () => server.stop(true) };
  }

  test("a GET is retried as told, each wait said on stderr, and then succeeds", async () => {
    const f = fakeStandby(2);
    try {
      const t0 = Date.now();
      const r = await run(["proplets", "list", "--url", f.url, "--token", "t"]);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: expect.stringContaining("0 of 0 proplet(s)") });
      expect(r.stderr.match(/manager unavailable \(hand-over\?\), retrying in 1 s/g)?.length).toBe(2);
      expect(f.seen.length).toBe(3);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    } finally {
      f.stop();
    }
  });

  test("a POST is retried only when the stand-by says it did not act", async () => {
    const acted = fakeStandby(1);
    try {
      const r = await run(["tasks", "stop", "abcd1234", "--url", acted.url, "--token", "t"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("503 no active manager");
      expect(r.stderr).not.toContain("retrying");
      expect(acted.seen).toEqual(["POST /tasks/abcd1234/stop"]);
    } finally {
      acted.stop();
    }
    const notActed = fakeStandby(1, { notActed: true });
    try {
      const r = await run(["tasks", "stop", "abcd1234", "--url", notActed.url, "--token", "t"]);
      expect(r.stderr).toContain("manager unavailable (hand-over?), retrying in 1 s");
      expect(notActed.seen.length).toBe(2);
    } finally {
      notActed.stop();
    }
  });

  test("bounded: a wait past the 30 s budget is not taken; the 503 is the answer", async () => {
    const f = fakeStandby(100, { retryAfter: "45" });
    try {
      const t0 = Date.now();
      const r = await run(["proplets", "list", "--url", f.url, "--token", "t"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("503");
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(f.seen.length).toBe(1);
    } finally {
      f.stop();
    }
  });
});

describe("ids, --json errors", () => {
  let s: Serve;
  const procs: { kill(sig?: NodeJS.Signals): Promise<void> }[] = [];
  beforeAll(async () => {
    s = await startServe({ extra: ["--no-local-proplet"] });
    for (const id of ["edge-alpha", "edge-beta"]) procs.push(await spawnProplet(s, id));
    await untilAlive(s.url, "edge-alpha", 20_000);
    await untilAlive(s.url, "edge-beta", 20_000);
  }, 60_000);
  afterAll(async () => {
    for (const p of procs) await p.kill("SIGKILL");
    await s?.kill("SIGKILL");
  });
  const env = () => ({ PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });

  test("a unique prefix names the proplet, on get and on --proplet-id", async () => {
    const r = await run(["proplets", "get", "edge-al", "--json"], env());
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).id).toBe("edge-alpha");
    const t = await run(
      [
        "tasks",
        "create",
        "add",
        "--file",
        join(ROOT, "test/fixtures/build/add.wasm"),
        "--proplet-id",
        "edge-be",
        "--json",
      ],
      env(),
    );
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout).proplet_id).toBe("edge-beta");
  });

  test("an ambiguous prefix is an error naming the candidates; an unknown one is the manager's 404", async () => {
    const amb = await run(["proplets", "get", "edge-"], env());
    expect(amb.code).toBe(1);
    expect(amb.stderr).toContain("proplet id edge- is ambiguous: 2 ids start with it: edge-alpha, edge-beta");
    const none = await run(["proplets", "get", "nowhere"], env());
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("404");
  });

  test("--json errors are {error} on stderr with exit code 1, nothing on stdout", async () => {
    const amb = await run(["proplets", "get", "edge-", "--json"], env());
    expect({ code: amb.code, stdout: amb.stdout }).toEqual({ code: 1, stdout: "" });
    expect(JSON.parse(amb.stderr)).toEqual({
      error: "proplet id edge- is ambiguous: 2 ids start with it: edge-alpha, edge-beta",
    });
    const none = await run(["proplets", "get", "nowhere", "--json"], env());
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stderr).error).toContain("404");
    // A usage error (an unknown flag) too.
    const usage = await run(["tasks", "list", "--bogus", "--json"], env());
    expect(usage.code).toBe(1);
    expect(JSON.parse(usage.stderr).error).toContain("--bogus");
  });
});

describe("no orphans on SIGTERM to a launcher", () => {
  /** Processes still in `pgid`'s process group (every descendant of a launcher started as a group leader). */
  function group(pgid: number): string[] {
    const left: string[] = [];
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(fields[2]) === pgid && fields[0] !== "Z") {
          left.push(`${d}: ${readFileSync(`/proc/${d}/cmdline`, "utf8").replaceAll("\0", " ")}`);
        }
      } catch {}
    }
    return left;
  }

  async function sigtermLeavesNothing(cmd: string[], env: Record<string, string>, ready: () => Promise<unknown>) {
    const launcher = Bun.spawn(cmd, {
      cwd: ROOT,
      env: { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}`, ...env },
      detached: true, // its own process group: every descendant is found by the group id
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      await ready();
      expect(group(launcher.pid).length).toBeGreaterThanOrEqual(2); // the launcher and what it started
      launcher.kill("SIGTERM"); // to the launcher only, as a process manager sends it
      await until("every process of the launcher's group to end", () => group(launcher.pid).length === 0, 15_000);
    } finally {
      try {
        process.kill(-launcher.pid, "SIGKILL");
      } catch {}
    }
  }

  test("npx bun src/main.ts proplet: the proplet goes too", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    try {
      const env = {
        PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
        PROPLET_DATA_DIR: tempDir("propeller-proplet-"),
        ...(await propletEnv(s.url, "npx-1")),
      };
      await sigtermLeavesNothing(["npx", "bun", "src/main.ts", "proplet"], env, () =>
        untilAlive(s.url, "npx-1", 30_000),
      );
    } finally {
      await s.kill("SIGKILL");
    }
  }, 60_000);

  test("npm start (serve): serve goes too", async () => {
    const http = await freePort();
    const mqtt = await freePort();
    const args = ["--http-port", String(http), "--mqtt-port", String(mqtt), "--data-dir", tempDir()];
    await sigtermLeavesNothing(["npm", "start", "--", ...args], {}, () =>
      until("serve to answer", async () => (await fetch(`http://127.0.0.1:${http}/health`)).ok, 30_000),
    );
  }, 60_000);
});

describe("a real stand-by during a hand-over", () => {
  test("kill -9 of the active manager: the CLI pointed at the stand-by retries its 503s and gets its answer", async () => {
    const pg = await startPostgres();
    const { proc: mosquitto, port } = await startMosquitto();
    const procs: Serve[] = [];
    try {
      const dbUrl = await pg.database("handover");
      const manager = (dataDir: string) =>
        startServe({
          dataDir,
          extra: ["--storage", "postgres", "--mqtt-url", `mqtt://127.0.0.1:${port}`, "--no-local-proplet"],
          env: { PROPELLER_DB_URL: dbUrl },
        });
      const a = await manager(tempDir());
      procs.push(a);
      const bDir = tempDir();
      copyFileSync(join(a.dataDir, "admin.token"), join(bDir, "admin.token"));
      const b = await manager(bDir);
      procs.push(b);
      await until(
        "b to be a stand-by",
        async () => ((await (await fetch(`${b.url}/health`)).json()) as { role?: string }).role === "standby",
      );
      await a.kill("SIGKILL");
      const r = await run([
        "tasks",
        "list",
        "--url",
        b.url,
        "--token",
        readFileSync(join(bDir, "admin.token"), "utf8").trim(),
      ]);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: expect.stringContaining("task(s)") });
      expect(r.stderr).toMatch(/manager unavailable \(hand-over\?\), retrying in \d+(\.\d)? s/);
    } finally {
      for (const p of procs) await p.kill("SIGKILL");
      mosquitto.kill("SIGKILL");
      await pg.stop();
    }
  }, 90_000);
});
