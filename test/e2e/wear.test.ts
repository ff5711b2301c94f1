import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { b64, http, ROOT, type Serve, spawnProplet, startServe, tempDir, until, untilAlive } from "../helpers.ts";

// Flash wear (docs/ARCHITECTURE.md, "Storage"): heartbeats and metrics are held in memory and written in batches,
// yet what a restart must know survives a kill -9, and an idle serve leaves its disk alone.

const running: { kill(s?: NodeJS.Signals | number): Promise<void> }[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.kill("SIGKILL");
});

/** Bytes the process made the kernel write to the block layer (`write_bytes`: 0 on tmpfs). */
const writeBytes = (pid: number) => Number(/^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"))![1]);
const TMPFS = 0x01021994;
const onTmpfs = (dir: string) => Number(statfsSync(dir).type) === TMPFS;

/** A data dir on a block device (`write_bytes` counts nothing on tmpfs): the temp dir, else one in the checkout. */
function diskDir(): string {
  const t = tempDir();
  if (!onTmpfs(t)) return t;
  mkdirSync(join(ROOT, "test", "artifacts"), { recursive: true });
  const d = mkdtempSync(join(ROOT, "test", "artifacts", "wear-"));
  if (onTmpfs(d)) throw new Error(`no disk to measure writes on: ${t} and ${d} are both tmpfs`);
  return d;
}

test("a proplet found silent is written at once: its last heartbeat survives a kill -9 of serve", async () => {
  const dataDir = tempDir();
  const extra = ["--no-local-proplet", "--liveliness-threshold", "2"];
  const s: Serve = await startServe({ dataDir, extra });
  running.push(s);
  const p = await spawnProplet(s, "quiet-one", { PROPLET_LIVELINESS_INTERVAL: "1" });
  running.push(p);
  await untilAlive(s.url, "quiet-one", 20_000);
  await Bun.sleep(3500); // a few heartbeats after its registration, which alone is written at once
  // Stopped, not killed: its connection stays open, so no Last Will says it went; only its heartbeats stop.
  p.proc.kill("SIGSTOP");
  const stoppedAt = Date.now();
  const last = await until(
    "serve to find the proplet silent",
    async () => {
      const v = (await http(`${s.url}/proplets/quiet-one`)).body;
      return v.alive === false && (v.last_alive_at as string);
    },
    15_000,
  );
  // The API says so from the time alone; serve's sweep, which writes it, runs every 500 ms at this threshold.
  await Bun.sleep(1500);
  await s.kill("SIGKILL");
  const again = await startServe({ dataDir, extra, ports: { http: s.httpPort, mqtt: s.mqttPort } });
  running.push(again);
  const v = (await http(`${again.url}/proplets/quiet-one`)).body;
  expect(v.alive).toBe(false);
  expect(v.last_alive_at).toBe(last);
  // Its last heartbeat, not its registration 3.5 s before.
  expect(Date.parse(v.last_alive_at)).toBeGreaterThan(stoppedAt - 2000);
  p.proc.kill("SIGKILL");
});

test("after a kill -9 of serve, the runs of a proplet that beats on are kept, though its stored heartbeat is old", async () => {
  const dataDir = tempDir();
  // Threshold and grace short, so that the heartbeat stored at its registration is past both at the restart.
  const extra = ["--no-local-proplet", "--liveliness-threshold", "2", "--partition-grace", "3"];
  const s = await startServe({ dataDir, extra });
  running.push(s);
  const p = await spawnProplet(s, "beats-on", { PROPLET_LIVELINESS_INTERVAL: "1" });
  running.push(p);
  await untilAlive(s.url, "beats-on", 20_000);
  const c = await http(`${s.url}/tasks`, "POST", { name: "spin", file: b64("spin") });
  await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
  await until("running", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
  await Bun.sleep(7000); // heartbeats held in memory meanwhile: the stored one is 7 s old, past threshold and grace
  // Held still over the restart, so that serve's first sweeps come before it is back (a slow link would do so).
  p.proc.kill("SIGSTOP");
  await s.kill("SIGKILL");
  const again = await startServe({ dataDir, extra, ports: { http: s.httpPort, mqtt: s.mqttPort } });
  running.push(again);
  await Bun.sleep(1500);
  p.proc.kill("SIGCONT");
  await untilAlive(again.url, "beats-on", 10_000); // it reconnects and lists its run again
  await Bun.sleep(6000); // past threshold and grace since the restart
  const t = (await http(`${again.url}/tasks/${c.body.id}`)).body;
  // Before: settled at the restart's first sweep, "proplet lost: beats-on stopped sending heartbeats".
  expect(t.error ?? "").not.toContain("proplet lost");
  expect(t).toMatchObject({ state: 2, proplet_id: "beats-on" });
}, 60_000);

test("serve idle with its local proplet: under 32 KiB reach the disk in 20 s", async () => {
  const dataDir = diskDir();
  const s = await startServe({ dataDir, extra: ["--liveliness-interval", "1"] });
  running.push(s);
  running.push({ kill: async () => rmSync(dataDir, { recursive: true, force: true }) });
  await untilAlive(s.url, readFileSync(join(s.dataDir, "local-proplet-id"), "utf8").trim(), 10_000);
  await Bun.sleep(3000); // start-up's own writes (migrations, the first heartbeat write) are over
  const before = writeBytes(s.proc.pid);
  await Bun.sleep(20_000);
  const written = writeBytes(s.proc.pid) - before;
  // Before heartbeats and metrics were held in memory: 80-100 KiB in 20 s (a commit, and a checkpoint, every few
  // seconds). Now nothing is due in 20 s: heartbeats and samples are written every 10 minutes.
  console.log(JSON.stringify({ idle_s: 20, write_bytes: written }));
  expect(written).toBeLessThan(32 * 1024);
  expect((await fetch(`${s.url}/health`)).ok).toBe(true);
}, 40_000);
