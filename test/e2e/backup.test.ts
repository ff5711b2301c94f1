import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { SQL } from "bun";
import pkg from "../../package.json" with { type: "json" };
import { MIGRATIONS as PG_MIGRATIONS } from "../../src/storage/postgres/migrations.ts";
import { MIGRATIONS } from "../../src/storage/sqlite/migrations.ts";
import {
  b64,
  cli,
  http,
  identity,
  ROOT,
  runTask,
  spawnPropeller,
  startServe,
  tempDir,
  tokenOf,
  until,
} from "../helpers.ts";
import { type Postgres, startPostgres } from "../postgres.ts";

// Backups, restores and upgrades as an operator meets them, with real serve processes on real stores: a backup
// through a running serve restored into another backend (the old tokens still work), refusals that create
// nothing, scheduled snapshots kept N deep, a newer schema refused naming both versions, a snapshot before a
// migration, `migrate --dry-run`, and the break-glass token.

type Backend = "sqlite" | "kv" | "postgres";

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

let dbs = 0;
/** The flags and environment of a store of this backend (a fresh PostgreSQL database each time). */
async function storeOf(backend: Backend, dataDir = tempDir()) {
  const url = backend === "postgres" ? await pg.database(`backup_${++dbs}`) : undefined;
  return {
    dataDir,
    url,
    serveExtra: ["--storage", backend],
    env: url ? { PROPELLER_DB_URL: url } : undefined,
    cliArgs: ["--storage", backend, "--data-dir", dataDir, ...(url ? ["--postgres-url", url] : [])],
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function get(url: string, token: string) {
  const r = await fetch(url, { headers: bearer(token) });
  return { status: r.status, body: (await r.json()) as any };
}

/** Waits for a process to exit (a serve that must refuse to start); kills it after 20 s. */
async function exitOf(p: ReturnType<typeof spawnPropeller>): Promise<number | null> {
  const t = setTimeout(() => void p.kill("SIGKILL"), 20_000);
  await p.proc.exited;
  clearTimeout(t);
  return p.proc.exitCode;
}

describe("backup through a running serve, restore into another backend", () => {
  for (const [from, to] of [
    ["sqlite", "kv"],
    ["kv", "postgres"],
    ["postgres", "sqlite"],
  ] as [Backend, Backend][]) {
    test(`${from} → ${to}: tasks, runs and identities come back; the old admin token works`, async () => {
      const src = await storeOf(from);
      const s = await startServe({ dataDir: src.dataDir, extra: src.serveExtra, env: src.env });
      const admin = s.token!;
      const file = join(tempDir(), "site.jsonl");
      let kept: any;
      let ran: any;
      let viewer: string;
      try {
        kept = (await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), metadata: { team: "edge" } }))
          .body;
        ran = await runTask(s.url, { name: "add", file: b64("add"), inputs: [20, 22] });
        expect(ran.state).toBe(3);
        await identity(s.url, "proplet", "edge-1");
        viewer = (await http(`${s.url}/tokens`, "POST", { role: "viewer", name: "ops" })).body.token;
        const b = cli(["backup", file], { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });
        expect(b.stderr).toContain("backed up");
        expect(b.code).toBe(0);
        expect(statSync(file).mode & 0o777).toBe(0o600);
      } finally {
        await s.kill("SIGKILL");
      }
      const header = JSON.parse(readFileSync(file, "utf8").split("\n")[0]!);
      expect(header).toMatchObject({ format: "propeller-archive", version: 1, source: from });

      // Into PostgreSQL, with a data dir not made yet: it failed after every record was in (ENOENT on its proplet id).
      const dst = await storeOf(to, to === "postgres" ? join(tempDir(), "not-made-yet") : undefined);
      const r = cli(["restore", file, ...dst.cliArgs]);
      expect(r.stderr).not.toContain("error");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/restored .*2 tasks/);
      const t = await startServe({ dataDir: dst.dataDir, extra: dst.serveExtra, env: dst.env });
      try {
        expect((await get(`${t.url}/health`, admin)).body.storage).toBe(to);
        // No new admin token was made: the site's own came back and works.
        expect(existsSync(join(dst.dataDir, "admin.token"))).toBe(false);
        const task = await get(`${t.url}/tasks/${kept.id}`, admin);
        expect(task.status).toBe(200);
        expect(task.body).toMatchObject({ name: "add", metadata: { team: "edge" } });
        const result = await get(`${t.url}/tasks/${ran.id}`, admin);
        expect(result.body.state).toBe(3);
        expect(result.body.results).toEqual(ran.results);
        expect((await get(`${t.url}/tasks/${ran.id}/runs`, admin)).body.total).toBe(1);
        const entities = (await get(`${t.url}/entities`, admin)).body;
        expect(JSON.stringify(entities)).toContain("edge-1");
        // The viewer token reads, and is still only a viewer.
        expect((await get(`${t.url}/tasks`, viewer!)).status).toBe(200);
        const write = await fetch(`${t.url}/tasks`, { method: "POST", headers: bearer(viewer!), body: "{}" });
        expect(write.status).toBe(403);
        // Restoring again into the now non-empty store is refused without --force.
        await t.kill("SIGTERM");
        const again = cli(["restore", file, ...dst.cliArgs]);
        expect(again.code).toBe(1);
        expect(again.stderr).toContain("is not empty");
        const forced = cli(["restore", file, ...dst.cliArgs, "--force"]);
        expect(forced.code).toBe(0);
      } finally {
        await t.kill("SIGKILL");
      }
    }, 60_000);
  }
});

test("an empty or missing source is refused, and nothing is created", () => {
  for (const backend of ["sqlite", "kv"]) {
    const missing = join(tempDir(), "nothing-here");
    const empty = tempDir();
    for (const dir of [missing, empty]) {
      const file = join(tempDir(), "out.jsonl");
      const r = cli(["backup", file, "--storage", backend, "--data-dir", dir]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`no ${backend} store at`);
      expect(existsSync(file)).toBe(false);
      expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    }
  }
  // Into a directory that is not there: said before serve is asked (it said "is `propeller serve` running?").
  const nowhere = cli(["backup", "/nonexistent-dir/out.jsonl"], { PROPELLER_URL: "http://127.0.0.1:9" });
  expect(nowhere.code).toBe(1);
  expect(nowhere.stderr).toContain("/nonexistent-dir does not exist");
});

test("scheduled snapshots: one a second, the newest 2 kept, each a restorable archive (0600)", async () => {
  const s = await startServe({ extra: ["--snapshot-interval", "1s", "--snapshot-keep", "2", "--no-local-proplet"] });
  const dir = join(s.dataDir, "snapshots");
  const scheduled = () => (existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith("scheduled-")) : []);
  try {
    const task = (await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") })).body;
    const firstSeen = await until("a first snapshot", () => scheduled()[0], 10_000);
    // Once the first is gone, two are kept (a snapshot being written meanwhile may briefly be a third or not yet
    // there: the check waits for the steady state, not one instant under load).
    await until(
      "the first snapshot removed and the newest 2 kept",
      () => !scheduled().includes(firstSeen) && scheduled().filter((n) => !n.endsWith(".tmp")).length === 2,
      15_000,
    );
    const newest = join(dir, scheduled().sort().at(-1)!);
    expect(statSync(newest).mode & 0o777).toBe(0o600);
    expect(readFileSync(newest, "utf8")).toContain(task.id);
    const into = tempDir();
    expect(cli(["restore", newest, "--data-dir", into]).code).toBe(0);
  } finally {
    await s.kill("SIGKILL");
  }
  const bad = cli(["serve", "--snapshot-interval", "5x", "--data-dir", tempDir(), "--http-port", "0"]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("--snapshot-interval");
  // A bare number, meant as hours, wrote the whole store every 6 s: its unit is asked for.
  const bare = cli(["serve", "--snapshot-interval", "6", "--data-dir", tempDir(), "--http-port", "0"]);
  expect(bare.code).toBe(1);
  expect(bare.stderr).toContain("--snapshot-interval 6: give its unit (6s, 6m, 6h or 6d), or off");
}, 40_000);

describe("a newer schema is refused naming both versions", () => {
  for (const backend of ["sqlite", "kv", "postgres"] as Backend[]) {
    test(backend, async () => {
      const st = await storeOf(backend);
      const s = await startServe({ dataDir: st.dataDir, extra: st.serveExtra, env: st.env });
      await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") });
      await s.kill("SIGTERM");
      let known: number;
      if (backend === "sqlite") {
        known = MIGRATIONS.length;
        const db = new Database(join(st.dataDir, "propeller.db"));
        db.run("INSERT INTO schema_migrations (version) VALUES (999)");
        db.close();
      } else if (backend === "kv") {
        known = 1;
        const { open } = await import("lmdb");
        const db = open({ path: join(st.dataDir, "kv"), encoding: "msgpack" });
        await db.put(["schema"], 999);
        await db.close();
      } else {
        known = PG_MIGRATIONS.length;
        const sql = new SQL(st.url!);
        await sql`INSERT INTO schema_migrations (version) VALUES (999)`;
        await sql.close();
      }
      const p = spawnPropeller(
        ["serve", ...st.serveExtra, "--data-dir", st.dataDir, "--http-port", "0", "--mqtt-port", "0"],
        st.env,
      );
      expect(await exitOf(p)).toBe(1);
      const out = p.output();
      expect(out).toContain("schema version 999");
      expect(out).toContain(`schema version ${known}`);
      expect(out).toContain(`propeller ${pkg.version} (commit `);
      expect(out).not.toContain("malformed");
      const dry = cli(["migrate", "--dry-run", ...st.cliArgs]);
      expect(dry.code).toBe(1);
      expect(dry.stderr).toContain("schema version 999");
    }, 40_000);
  }
});

test("an older sqlite store: migrate --dry-run lists what is pending and changes nothing; serve snapshots it first", async () => {
  const dataDir = tempDir();
  const fixture = join(ROOT, "test", "fixtures", "stores");
  copyFileSync(join(fixture, "sqlite-v19.db"), join(dataDir, "propeller.db"));
  const dry = cli(["migrate", "--dry-run", "--data-dir", dataDir]);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain(`schema version 19, propeller ${pkg.version}`);
  expect(dry.stdout).toContain(`${MIGRATIONS.length - 19} pending`);
  expect(dry.stdout).toContain("20: CREATE TABLE task_meta");
  expect(existsSync(join(dataDir, "snapshots"))).toBe(false);
  const version = (file: string) => {
    const db = new Database(file, { readonly: true });
    const v = db.query<{ v: number }, []>("SELECT max(version) AS v FROM schema_migrations").get()!.v;
    db.close();
    return v;
  };
  expect(version(join(dataDir, "propeller.db"))).toBe(19);
  // A backup of it changes nothing (it is read from a migrated copy), and restores into another backend; so does
  // a backup file of the earlier kind (the SQLite database itself).
  const task = JSON.parse(readFileSync(join(fixture, "sqlite-v19.task.json"), "utf8"));
  const archive = join(tempDir(), "old.jsonl");
  expect(cli(["backup", archive, "--data-dir", dataDir]).code).toBe(0);
  expect(version(join(dataDir, "propeller.db"))).toBe(19);
  expect(existsSync(join(dataDir, "snapshots"))).toBe(false);
  for (const file of [archive, join(fixture, "sqlite-v19.db")]) {
    const into = tempDir();
    const r = cli(["restore", file, "--storage", "kv", "--data-dir", into]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("1 task");
    const check = await startServe({ dataDir: into, extra: ["--storage", "kv", "--no-local-proplet", "--no-auth"] });
    try {
      const got = (await fetch(`${check.url}/tasks/${task.id}`).then((x) => x.json())) as { schedule?: string };
      expect(got.schedule).toBe(task.schedule);
    } finally {
      await check.kill("SIGKILL");
    }
  }

  const s = await startServe({ dataDir, extra: ["--no-local-proplet"] });
  try {
    expect((await http(`${s.url}/tasks/${task.id}`)).body.name).toBe(task.name);
    const snaps = readdirSync(join(dataDir, "snapshots")).filter((n) => n.startsWith("pre-migrate-"));
    expect(snaps.length).toBe(1);
    expect(snaps[0]).toEndWith("-sqlite-v19.db");
    const snap = join(dataDir, "snapshots", snaps[0]!);
    expect(statSync(snap).mode & 0o777).toBe(0o600);
    expect(version(snap)).toBe(19);
    expect(s.output()).toContain(`migrated from schema version 19 to ${MIGRATIONS.length}`);
  } finally {
    await s.kill("SIGTERM");
  }
  const after = cli(["migrate", "--dry-run", "--data-dir", dataDir]);
  expect(after.stdout).toContain("nothing to migrate");
}, 40_000);

test("break-glass: tokens create --data-dir is refused while serve runs, and mints a working admin token after", async () => {
  for (const backend of ["sqlite", "kv", "postgres"] as Backend[]) {
    const st = await storeOf(backend);
    const serve = { dataDir: st.dataDir, extra: [...st.serveExtra, "--no-local-proplet"], env: st.env };
    const s = await startServe(serve);
    const refused = cli(["tokens", "create", ...st.cliArgs]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      backend === "postgres" ? "holds the site's lease" : `is in use by serve (PID ${s.proc.pid})`,
    );
    await s.kill("SIGTERM");
    const minted = cli(["tokens", "create", ...st.cliArgs]);
    expect(minted.code).toBe(0);
    const token = minted.stdout.trim();
    expect(token).toStartWith("ppt_");
    const again = await startServe(serve);
    try {
      const r = await fetch(`${again.url}/tokens`, {
        method: "POST",
        headers: { ...bearer(token), "content-type": "application/json" },
        body: JSON.stringify({ role: "viewer" }),
      });
      expect(r.status).toBe(201); // an admin's right
    } finally {
      await again.kill("SIGKILL");
    }
  }
}, 60_000);

/**
 * A stopped site whose admin.token holds a revoked token while another admin token works (so serve makes no new
 * one of its own accord at start).
 */
async function siteWithDeadAdminFile() {
  const dataDir = tempDir();
  const serve = { dataDir, extra: ["--no-local-proplet"] };
  const s = await startServe(serve);
  const file = join(dataDir, "admin.token");
  const first = readFileSync(file, "utf8").trim();
  const other = (await (
    await fetch(`${s.url}/tokens`, {
      method: "POST",
      headers: { ...bearer(first), "content-type": "application/json" },
      body: JSON.stringify({ role: "admin", name: "elsewhere" }),
    })
  ).json()) as { token: string };
  expect(other.token).toStartWith("ppt_");
  expect((await fetch(`${s.url}/tokens/admin`, { method: "DELETE", headers: bearer(first) })).status).toBe(200);
  await s.kill("SIGTERM");
  return { dataDir, serve, file, first };
}

test("break-glass writes the admin token into admin.token when the file's token no longer works, so the CLI on the gateway works again", async () => {
  const { dataDir, serve, file } = await siteWithDeadAdminFile();
  const local = { PROPELLER_DATA_DIR: dataDir };

  const minted = cli(["tokens", "create", "--data-dir", dataDir]);
  expect(minted.code).toBe(0);
  expect(minted.stderr).toContain(`written to ${file} as well`);
  expect(readFileSync(file, "utf8").trim()).toBe(minted.stdout.trim());
  expect(statSync(file).mode & 0o777).toBe(0o600);
  // A file whose token works is left alone.
  const second = cli(["tokens", "create", "--data-dir", dataDir]);
  expect(second.code).toBe(0);
  expect(second.stderr).toContain("shown once");
  expect(readFileSync(file, "utf8").trim()).toBe(minted.stdout.trim());

  const again = await startServe(serve);
  try {
    // The CLI on this machine, no --token: it reads the data dir's admin.token.
    const listed = cli(["tokens", "list", "--url", again.url], local);
    expect(listed.stderr).toBe("");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("break-glass");
  } finally {
    await again.kill("SIGKILL");
  }
}, 60_000);

test("serve started with an admin.token whose token no longer works writes a working one there (other admins exist)", async () => {
  const { dataDir, serve, file, first } = await siteWithDeadAdminFile();
  const again = await startServe(serve);
  try {
    expect(again.output()).toContain("held no admin token that works");
    const now = readFileSync(file, "utf8").trim();
    expect(now).not.toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(again.output()).toContain("console (sign-in link");
    const listed = cli(["tokens", "list", "--url", again.url], { PROPELLER_DATA_DIR: dataDir });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("elsewhere");
  } finally {
    await again.kill("SIGKILL");
  }
}, 60_000);
