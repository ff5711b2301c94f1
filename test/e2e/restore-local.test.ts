import { expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { b64, cli, http, MAIN, startServe, tempDir, tokenOf, until } from "../helpers.ts";

// A site restored into a new data dir (a replaced gateway): its serve's local proplet comes back as itself. The
// archive did not say which proplet was serve's own, so the restored serve made a new one, the old one stayed
// listed as dead, and the tasks pinned to it waited for it for ever. Real serve processes and stores.

const get = (url: string, token: string): Promise<{ status: number; body: any }> =>
  fetch(url, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
    status: r.status,
    body: await r.json(),
  }));
const post = (url: string, token: string): Promise<{ status: number; body: any }> =>
  fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
    status: r.status,
    body: await r.json(),
  }));

test("backup, restore into a new data dir, serve: one proplet, the old local one, and its pinned task runs", async () => {
  const a = await startServe();
  const admin = a.token!;
  const file = join(tempDir(), "site.jsonl");
  let localId: string;
  let pinned: string;
  try {
    const proplets = (await http<{ proplets: { id: string }[] }>(`${a.url}/proplets`)).body.proplets;
    expect(proplets.length).toBe(1);
    localId = proplets[0]!.id;
    pinned = (
      await http(`${a.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [2, 3], proplet_id: localId })
    ).body.id;
    const b = cli(["backup", file], { PROPELLER_URL: a.url, PROPELLER_TOKEN: tokenOf(a.url) });
    expect(b.code).toBe(0);
  } finally {
    await a.kill();
  }
  expect(JSON.parse(readFileSync(file, "utf8").split("\n")[0]!).local_proplet_id).toBe(localId);

  const dir = tempDir();
  const r = cli(["restore", file, "--data-dir", dir]);
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, "local-proplet-id"), "utf8")).toBe(localId);
  const b = await startServe({ dataDir: dir });
  try {
    const listed = (await get(`${b.url}/proplets`, admin)).body.proplets as { id: string; alive: boolean }[];
    expect(listed.map((p) => [p.id, p.alive])).toEqual([[localId, true]]);
    expect((await post(`${b.url}/tasks/${pinned}/start`, admin)).status).toBe(200);
    const done = await until("the pinned task to end", async () => {
      const t = (await get(`${b.url}/tasks/${pinned}`, admin)).body;
      return t.state >= 3 ? t : undefined;
    });
    expect(done).toMatchObject({ state: 3, results: "5", proplet_id: localId });
  } finally {
    await b.kill();
  }
}, 60_000);

test("a restore killed half-way: serve and backup refuse the store naming it, a restore without --force too; with --force it is whole", async () => {
  // An archive big enough that its restore takes a while: one task's record copied under 6,000 ids.
  const a = await startServe();
  const admin = a.token!;
  const small = join(tempDir(), "small.jsonl");
  try {
    const meta = { pad: "x".repeat(2000) };
    await http(`${a.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2], metadata: meta });
    expect(cli(["backup", small], { PROPELLER_URL: a.url, PROPELLER_TOKEN: tokenOf(a.url) }).code).toBe(0);
  } finally {
    await a.kill();
  }
  const lines = readFileSync(small, "utf8").trim().split("\n");
  const taskLine = lines.find((l) => JSON.parse(l).k === "task")!;
  const others = lines.slice(1, -1).filter((l) => l !== taskLine);
  const tasks = Array.from({ length: 6000 }, () => {
    const r = JSON.parse(taskLine);
    r.v.id = crypto.randomUUID();
    return JSON.stringify(r);
  });
  const big = join(tempDir(), "big.jsonl");
  const records = [...others, ...tasks];
  writeFileSync(big, `${[lines[0], ...records, JSON.stringify({ end: true, records: records.length })].join("\n")}\n`);

  const dir = tempDir();
  const restore = Bun.spawn([process.execPath, MAIN, "restore", big, "--data-dir", dir], {
    stdout: "pipe",
    stderr: "pipe",
  });
  // Killed as soon as it holds the data dir: its writes have begun, or are about to.
  await until(
    "the restore to take the data dir",
    async () => {
      if (restore.exitCode !== null) throw new Error(`restore ended first: ${restore.exitCode}`);
      return (
        (existsSync(join(dir, "lock")) && readFileSync(join(dir, "lock"), "utf8").includes(" restore")) || undefined
      );
    },
    10_000,
    2,
  ).catch(async (e) => {
    throw new Error(`${e}: ${await new Response(restore.stderr).text()} ${await new Response(restore.stdout).text()}`);
  });
  restore.kill("SIGKILL");
  await restore.exited;

  const serve = Bun.spawnSync(
    [process.execPath, MAIN, "serve", "--data-dir", dir, "--http-port", "0", "--mqtt-port", "0"],
    {
      timeout: 20_000,
    },
  );
  expect(serve.exitCode).not.toBe(0);
  expect(serve.stderr.toString()).toContain("holds a restore that did not finish");
  expect(serve.stderr.toString()).toContain("--force");
  const backup = cli(["backup", join(tempDir(), "b.jsonl"), "--data-dir", dir]);
  expect(backup.code).not.toBe(0);
  expect(backup.stderr).toContain("holds a restore that did not finish");
  // migrate reads it no more than the others (it said "nothing to migrate" of a half store).
  const migrate = cli(["migrate", "--dry-run", "--data-dir", dir]);
  expect(migrate.code).not.toBe(0);
  expect(migrate.stderr).toContain("holds a restore that did not finish");
  const again = cli(["restore", big, "--data-dir", dir]);
  expect(again.code).not.toBe(0);
  expect(again.stderr).toContain("did not finish");
  expect(again.stderr).toContain("--force");

  const forced = cli(["restore", big, "--data-dir", dir, "--force"]);
  expect({ code: forced.code, stderr: forced.stderr }).toMatchObject({ code: 0 });
  expect(forced.stdout).toContain("restored");
  expect(existsSync(join(dir, "lock"))).toBe(false);
  const b = await startServe({ dataDir: dir });
  try {
    expect((await get(`${b.url}/tasks?limit=1`, admin)).body.total).toBe(6000);
  } finally {
    await b.kill();
  }
}, 120_000);
