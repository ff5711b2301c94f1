import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { b64, http, runTask, type Serve, startServe, tempDir } from "../helpers.ts";
import { type Postgres, startPostgres } from "../postgres.ts";

// Each backend behind a real serve: what a client was told is stored is there, every field, after serve is
// killed with -9 and started again on the same store; the memory backend says it keeps nothing, and does.

let pg: Postgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

const TASKS = [
  { name: "tick", file: b64("add"), schedule: "0 0 1 1 *", timezone: "Europe/Paris", priority: 80 },
  { name: "tagged", file: b64("add"), metadata: { team: "edge", n: 3 }, priority: 10, max_retries: 2 },
  { name: "env", file: b64("hello"), env: { GREETING: "Hey" }, inputs: ["Ada"], timeout_s: 30 },
];

async function writeAndKill(s: Serve): Promise<Record<string, unknown>[]> {
  const created: Record<string, unknown>[] = [];
  for (const t of TASKS) {
    const r = await http(`${s.url}/tasks`, "POST", t);
    expect(r.status).toBe(201);
    created.push(r.body);
  }
  const ran = await runTask(s.url, { name: "add", file: b64("add"), inputs: [1, 2] });
  expect(ran.state).toBe(3);
  created.push(ran);
  // Killed right after the last acknowledgement: no graceful shutdown, no chance to flush anything later.
  await s.kill("SIGKILL");
  return created;
}

async function expectIntact(s: Serve, created: Record<string, unknown>[]): Promise<void> {
  for (const before of created) {
    const after = (await http(`${s.url}/tasks/${before.id}`)).body;
    // next_run is recomputed from the schedule at start; everything else is as stored.
    const { next_run: _a, updated_at: _b, ...rest } = before as Record<string, unknown>;
    expect(after).toMatchObject(rest);
  }
  const filtered = (await http(`${s.url}/tasks?metadata=${encodeURIComponent('{"team":"edge"}')}`)).body;
  expect(filtered.tasks.map((t: { name: string }) => t.name)).toEqual(["tagged"]);
}

describe("storage backends behind serve", () => {
  for (const backend of ["sqlite", "kv", "postgres"] as const) {
    test(`${backend}: every acknowledged task is intact after kill -9 and a restart`, async () => {
      const dataDir = tempDir();
      const extra = ["--storage", backend, "--liveliness-interval", "1"];
      const env = backend === "postgres" ? { PROPELLER_DB_URL: await pg.database("serve_restart") } : undefined;
      const first = await startServe({ dataDir, extra, env });
      expect((await http(`${first.url}/health`)).body.storage).toBe(backend);
      const created = await writeAndKill(first);
      const second = await startServe({ dataDir, extra, env });
      try {
        await expectIntact(second, created);
      } finally {
        await second.kill("SIGKILL");
      }
    });
  }

  test("memory: /health says so, --help says it keeps nothing, and a restart starts empty", async () => {
    const dataDir = tempDir();
    const first = await startServe({ dataDir, extra: ["--storage", "memory"] });
    expect((await http(`${first.url}/health`)).body.storage).toBe("memory");
    await writeAndKill(first);
    const second = await startServe({ dataDir, extra: ["--storage", "memory"] });
    try {
      expect((await http(`${second.url}/tasks`)).body.total).toBe(0);
    } finally {
      await second.kill("SIGKILL");
    }
  });

  test("bad choices are refused naming the setting", async () => {
    const { cli } = await import("../helpers.ts");
    const bad = cli(["serve", "--storage", "mongo"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--storage must be one of sqlite, kv, memory, postgres, got "mongo"');
    expect(cli(["serve", "--storage", "postgres"]).stderr).toContain("needs --postgres-url");
    expect(cli(["serve", "--help"]).stdout).toContain("keeps nothing across a restart");
    // Its own data dir and ports: not the default data dir (as root /var/lib/propeller) nor :7070/:1883, which a
    // serve checks free before it writes anything.
    const own = ["--data-dir", join(tempDir(), "d"), "--http-port", "0", "--mqtt-port", "0"];
    const unreachable = cli([
      "serve",
      "--storage",
      "postgres",
      "--postgres-url",
      "postgres://u:secret@127.0.0.1:1/x",
      ...own,
    ]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("postgres://u:***@127.0.0.1:1/x");
    expect(unreachable.stderr).not.toContain("secret");
  });
});
