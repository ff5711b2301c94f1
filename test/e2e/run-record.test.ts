import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  http,
  type Proc,
  propletEnv,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  until,
  untilEnded,
} from "../helpers.ts";

// A proplet killed with -9 in the middle of a run and started again on its state dir: its run record says it had
// the run and never finished it, so the manager's start sent again is answered with a failure (the reason said),
// retried per the task's retries, never run again as if it were new. The guest's executions are counted in a
// ledger outside the manager (test/fixtures/ledger.c).

let s: Serve;
const procs: Proc[] = [];
const ledger = tempDir("propeller-ledger-");
const state = tempDir("propeller-proplet-");

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
  login = await propletEnv(s.url, "recorder");
});

afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

let login: Record<string, string>;
const proplet = async (dir = state, interval = "1") =>
  spawnPropeller(["proplet"], {
    ...login,
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_DATA_DIR: dir,
    PROPLET_DIRS: ledger,
    PROPLET_LIVELINESS_INTERVAL: interval,
  });

function lines(taskId: string): string[] {
  const f = join(ledger, "ledger.txt");
  return existsSync(f)
    ? readFileSync(f, "utf8")
        .split("\n")
        .filter((l) => l.startsWith(`${taskId} `))
    : [];
}

/**
 * A 2 s ledger task (one retry) whose proplet is killed 0.5 s in and started again on `restartDir`, beating every
 * `interval` seconds.
 */
async function killedMidRun(restartDir: string, interval = "1") {
  let p = await proplet();
  procs.push(p);
  await until("the proplet to be alive", async () => (await http(`${s.url}/proplets/recorder`)).body?.alive);
  expect((await http(`${s.url}/proplets/recorder`)).body.metadata).toMatchObject({ run_record: true });
  const c = await http(`${s.url}/tasks`, "POST", {
    name: "ledger",
    file: b64("ledger"),
    inputs: [2000],
    cli_args: [`--dir=${ledger}::/ledger`],
    max_retries: 1,
    retry_backoff_s: 0.1,
  });
  await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
  await until("the task to run", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
  await Bun.sleep(500);
  await p.kill("SIGKILL");
  const restartedAt = Date.now();
  p = await proplet(restartDir, interval);
  procs.push(p);
  const t = await untilEnded(s.url, c.body.id, "the task to end", 30_000).catch((e) => {
    throw new Error(`${e}\n--- serve ---\n${s.output().slice(-3000)}\n--- proplet ---\n${p.output()}`);
  });
  await Bun.sleep(1500);
  const runs = (await http(`${s.url}/tasks/${c.body.id}/runs`)).body.runs as {
    state: number;
    error?: string;
    finished_at: string;
  }[];
  expect({ state: t.state, executions: lines(c.body.id).length }).toEqual({ state: 3, executions: 1 });
  expect(runs.map((r) => r.state)).toEqual([3, 4]);
  await p.kill("SIGKILL");
  return { error: runs[1]!.error, output: p.output(), endedMs: Date.parse(runs[1]!.finished_at) - restartedAt };
}

test("a proplet killed mid-run and restarted says so from its record at once: failed, retried once, the guest ran once", async () => {
  // Beating every 10 s: the run ended only when a heartbeat past the start's grace no longer listed it and the
  // manager asked, 10 s and more after the restart (a cron firing meanwhile found it Running and was skipped).
  const r = await killedMidRun(state, "10");
  expect(r.error).toContain("the proplet stopped while the run was in progress");
  expect(r.output).toContain("interrupted: the proplet stopped while the run was in progress");
  console.log(`the killed run ended ${r.endedMs} ms after the proplet was started again`);
  expect(r.endedMs).toBeLessThan(5000);
}, 60_000);

test("restarted on a wiped state dir, it cannot say it never had the run: failed and retried, not run again", async () => {
  const r = await killedMidRun(tempDir("propeller-proplet-"));
  expect(r.error).toContain("cannot tell whether it ran");
}, 60_000);
