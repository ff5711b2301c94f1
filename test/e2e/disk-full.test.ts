import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  cli,
  http,
  type Proc,
  type Serve,
  spawnProplet,
  startServe,
  tempDir,
  until,
  untilAlive,
} from "../helpers.ts";

// serve's data dir on a small tmpfs that fills up while a task runs on a standalone proplet: its result arrives
// while no commit can succeed. The commit is undone; the run it ended must not stay Running for good (it did, with
// its proplet's books saying it had nothing: the result was lost). Once there is room again, the proplet is asked
// about the run (it keeps a run record) and the result it answers with is committed.

let mnt: string;
let s: Serve;
let proplet: Proc;

beforeAll(async () => {
  mnt = tempDir();
  const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]);
  if (m.exitCode !== 0)
    throw new Error(`mounting a tmpfs failed (this test needs root, as CI has): ${m.stderr.toString()}`);
  mkdirSync(join(mnt, "data"));
  s = await startServe({ dataDir: join(mnt, "data"), extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
  proplet = await spawnProplet(s, "filler-proof", { PROPLET_LIVELINESS_INTERVAL: "1" });
  await untilAlive(s.url, "filler-proof", 15_000);
});

afterAll(async () => {
  await proplet?.kill("SIGKILL");
  await s?.kill("SIGKILL");
  if (mnt) Bun.spawnSync(["umount", "-l", mnt]);
});

test("a result that arrives while the disk is full is not lost: the task ends Completed once there is room", async () => {
  const c = await http(`${s.url}/tasks`, "POST", { name: "ticker", file: b64("ticker"), inputs: [4, 500] });
  expect(c.status).toBe(201);
  expect((await http(`${s.url}/tasks/${c.body.id}/start`, "POST")).status).toBe(200);
  await until("the task to run", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
  // Every byte of the tmpfs taken: the run's end cannot be committed.
  const filler = join(mnt, "filler");
  const chunk = new Uint8Array(1 << 16);
  try {
    for (;;) writeFileSync(filler, chunk, { flag: "a" });
  } catch {}
  // The run takes 2 s (4 ticks of 500 ms): its result comes while the disk is full.
  await Bun.sleep(3500);
  rmSync(filler);
  const t = await until(
    "the task to end once there is room",
    async () => {
      const r = (await http(`${s.url}/tasks/${c.body.id}`)).body;
      return r.state >= 3 ? r : undefined;
    },
    30_000,
  ).catch((e) => {
    throw new Error(`${e}\n--- serve ---\n${s.output().slice(-3000)}`);
  });
  expect({ status: t.status, error: t.error }).toEqual({ status: "Completed", error: undefined });
  expect(s.output()).toContain("a commit failed and was undone");
  // One run: the proplet answered about the run it had, it did not run it again.
  expect((await http(`${s.url}/tasks/${c.body.id}/runs`)).body.total).toBe(1);
}, 60_000);

test("a data dir on a read-only file system is refused saying so, not with a bare EROFS", () => {
  const ro = tempDir();
  const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m,ro,mode=700", "tmpfs", ro]);
  if (m.exitCode !== 0) throw new Error(`mounting a tmpfs failed (this test needs root): ${m.stderr.toString()}`);
  try {
    const r = cli(["serve", "--data-dir", ro, "--http-port", "0", "--mqtt-port", "0"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`serve's data dir ${ro} cannot be written (EROFS: read-only file system)`);
  } finally {
    Bun.spawnSync(["umount", "-l", ro]);
  }
});
