import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { http, type Proc, propletEnv, type Serve, spawnPropeller, startServe, tempDir, until } from "../helpers.ts";

// What a proplet reads back from its state dir at start (its run record, runs/): a runs.log that is a FIFO (an
// open of it blocks until a writer comes) and a directory where a kept result file would be. Before, the first
// hung the proplet's start for ever and the second stopped it with EISDIR; now each is set aside with a warning
// and the proplet comes up, its record begun anew (a start sent again for an earlier run is answered "cannot
// tell", never run twice).

let s: Serve;
const procs: Proc[] = [];

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
});

afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

test("a FIFO as runs.log and a directory among kept results do not keep a proplet from starting", async () => {
  const state = tempDir("propeller-proplet-");
  mkdirSync(join(state, "runs", "results", "run-1.json"), { recursive: true });
  expect(spawnSync("mkfifo", [join(state, "runs", "runs.log")]).status).toBe(0);
  const p = spawnPropeller(["proplet"], {
    ...(await propletEnv(s.url, "hoarder")),
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_DATA_DIR: state,
    PROPLET_LIVELINESS_INTERVAL: "1",
  });
  procs.push(p);
  await until("the proplet to be alive", async () => (await http(`${s.url}/proplets/hoarder`)).body?.alive, 15_000);
  expect(p.output()).toContain("is not a regular file");
  expect((await http(`${s.url}/proplets/hoarder`)).body.metadata).toMatchObject({ run_record: true });
  expect((await http(`${s.url}/health`)).status).toBe(200);
}, 30_000);
