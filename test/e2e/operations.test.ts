import { expect, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  cli,
  http,
  spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

/** The records of one kind in a backup archive (JSON lines: a header, records `{k, v}`, a trailer). */
function archived(file: string, kind: string): { id: string; name: string }[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((r) => r.k === kind)
    .map((r) => r.v);
}

// What an operator does to a running site: one serve per data dir, backups while it works, restores, proplets
// that come back as themselves.

test("a second serve on the same data dir exits naming the first's PID; after kill -9 a new one starts", async () => {
  const first = await startServe({ extra: ["--no-local-proplet"] });
  try {
    const second = cli(["serve", "--data-dir", first.dataDir, "--http-port", "0", "--mqtt-port", "0"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`${first.dataDir} is in use by serve (PID ${first.proc.pid})`);
    await first.kill("SIGKILL");
    const again = await startServe({ dataDir: first.dataDir, extra: ["--no-local-proplet"] });
    expect((await http(`${again.url}/tasks`)).status).toBe(200);
    await again.kill("SIGTERM");
    expect(existsSync(join(first.dataDir, "lock"))).toBe(false); // a clean stop leaves no lock behind
  } finally {
    await first.kill("SIGKILL");
  }
});

test("a backup taken during a burst holds every task acknowledged before it began; restore refuses a live dir", async () => {
  const s = await startServe({ extra: ["--no-local-proplet"] });
  const backup = join(tempDir(), "site.jsonl");
  try {
    const acked: string[] = [];
    let before: string[] = [];
    let next = 0;
    const burst = Array.from({ length: 16 }, async () => {
      while (next < 1000) {
        next++;
        const r = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
        if (r.status === 201) acked.push(r.body.id);
      }
    });
    await until("half the burst", () => acked.length >= 500, 30_000);
    before = [...acked];
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const b = cli(["backup", backup], env);
    expect(b.code).toBe(0);
    await Promise.all(burst);
    expect(acked.length).toBe(1000);
    const ids = new Set(archived(backup, "task").map((t) => t.id));
    expect(before.filter((id) => !ids.has(id))).toEqual([]);
    expect(ids.size).toBeGreaterThanOrEqual(before.length);
    const refused = cli(["restore", backup, "--data-dir", s.dataDir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`is in use by serve (PID ${s.proc.pid})`);
  } finally {
    await s.kill("SIGKILL");
  }
  // Restored into a new data dir, a serve starts on it with the tasks; the site's tokens are in the backup, so the
  // operator's admin token (kept outside it) still works.
  const dir = tempDir();
  expect(cli(["restore", backup, "--data-dir", dir]).code).toBe(0);
  copyFileSync(join(s.dataDir, "admin.token"), join(dir, "admin.token"));
  const r = await startServe({ dataDir: dir, extra: ["--no-local-proplet"] });
  try {
    const page = (await http(`${r.url}/tasks?limit=1`)).body;
    expect(page.total).toBeGreaterThanOrEqual(500);
    expect(page.tasks[0].name).toBe("add");
  } finally {
    await r.kill("SIGKILL");
  }
});

test("a stopped data dir is backed up directly; a running one only through serve", async () => {
  const s = await startServe({ extra: ["--no-local-proplet"] });
  await http(`${s.url}/tasks`, "POST", { name: "kept", file: b64("add") });
  const live = cli(["backup", join(tempDir(), "x.db"), "--data-dir", s.dataDir]);
  expect(live.code).toBe(1);
  expect(live.stderr).toContain("back up through it");
  await s.kill("SIGTERM");
  const file = join(tempDir(), "offline.jsonl");
  expect(cli(["backup", file, "--data-dir", s.dataDir]).code).toBe(0);
  expect(archived(file, "task").map((t) => t.name)).toEqual(["kept"]);
});

test("a standalone proplet without an id keeps the one it made across restarts", async () => {
  const s = await startServe({ extra: ["--no-local-proplet", "--no-auth"] });
  const state = tempDir();
  const env = { PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`, PROPLET_DATA_DIR: state };
  try {
    const first = spawnPropeller(["proplet"], env);
    const id = await until("its id to be written", () =>
      existsSync(join(state, "proplet-id")) ? readFileSync(join(state, "proplet-id"), "utf8").trim() : undefined,
    );
    await untilAlive(s.url, id);
    // A second proplet on the same state dir would be the same proplet twice: it exits.
    const twin = cli(["proplet"], env);
    expect(twin.code).toBe(1);
    expect(twin.stderr).toContain(`is in use by proplet (PID ${first.proc.pid})`);
    await first.kill("SIGKILL");
    const again = spawnPropeller(["proplet"], env);
    try {
      await until("the restarted proplet to announce itself", () => again.output().includes(`proplet ${id} connected`));
      expect((await http(`${s.url}/proplets`)).body.total).toBe(1);
    } finally {
      await again.kill("SIGKILL");
    }
  } finally {
    await s.kill("SIGKILL");
  }
});

test("with authentication on, a proplet identity made for it is used instead of the state dir", async () => {
  const s = await startServe({ extra: ["--no-local-proplet"] });
  try {
    const state = tempDir();
    const p = await spawnProplet(s, "named-edge", { PROPLET_DATA_DIR: state });
    try {
      await untilAlive(s.url, "named-edge");
      expect(existsSync(join(state, "proplet-id"))).toBe(false);
    } finally {
      await p.kill("SIGKILL");
    }
  } finally {
    await s.kill("SIGKILL");
  }
});

test("serve reads a config file: a bad value exits naming its key; config show tells where each value came from", () => {
  const dir = tempDir();
  const bad = join(dir, "bad.toml");
  writeFileSync(bad, '[serve]\nstale_proplet_removal = "soon"\n');
  const r = cli(["serve", "--config", bad, "--data-dir", join(dir, "d"), "--http-port", "0", "--mqtt-port", "0"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`stale_proplet_removal in [serve] of ${bad} must be an integer`);
  const good = join(dir, "good.toml");
  writeFileSync(good, '[serve]\nscheduler = "priority"\nhttp_port = 9999\n');
  const shown = cli(["config", "show", "--config", good, "--json"], { PROPELLER_HTTP_PORT: "8888" });
  const rows = JSON.parse(shown.stdout).settings as { key: string; value: string; source: string }[];
  const get = (k: string) => rows.find((x) => x.key === k);
  expect(get("scheduler")).toEqual({ key: "scheduler", value: "priority", source: `${good} (scheduler)` });
  expect(get("http_port")).toEqual({ key: "http_port", value: "8888", source: "env PROPELLER_HTTP_PORT" });
  expect(get("mqtt_port")?.source).toBe("default");
});
