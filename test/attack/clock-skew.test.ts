import { afterAll, beforeAll, expect, test } from "bun:test";
import type mqtt from "mqtt";
import {
  b64,
  http,
  type Proc,
  peer,
  propletEnv,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  until,
} from "../helpers.ts";

// A start sent again (docs/ARCHITECTURE.md, "Exactly once") to a proplet whose run record began just now (its
// state dir wiped): it cannot say it never had a run started before its record began, and must fail the run, not
// run it. Its record's start is on its own clock, the run's start on the manager's: a manager whose clock is 5
// minutes ahead (an edge device without a real-time clock boots behind) made a run started 30 s before the
// wipe look 4.5 minutes younger than the record, and the proplet ran it a second time. Now the start says the
// manager's time of sending too, and the proplet compares on its own clock.

const T = "m/default/c/default";
let s: Serve;
let proplet: Proc;
let spawnedAt = 0;
let manager: mqtt.MqttClient;
const results: { task_id: string; run_id?: string; results?: unknown; error?: string | null }[] = [];

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
  spawnedAt = Date.now();
  proplet = spawnPropeller(["proplet"], {
    ...(await propletEnv(s.url, "wiped")),
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_DATA_DIR: tempDir("propeller-proplet-"),
    PROPLET_LIVELINESS_INTERVAL: "1",
  });
  // A second manager of the site (its clock 5 minutes ahead), as a real MQTT peer with a manager's identity.
  manager = await peer(s, "manager", "skewed");
  manager.on("message", (_t, p) => results.push(JSON.parse(p.toString())));
  await manager.subscribeAsync(`${T}/control/proplet/results`, { qos: 1 });
  await until("the proplet to be alive", async () => (await http(`${s.url}/proplets/wiped`)).body?.alive, 15_000);
}, 30_000);

afterAll(async () => {
  manager?.end(true);
  await proplet?.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

test("a manager's clock ahead cannot make a proplet with a fresh record run a start sent again", async () => {
  const ahead = 5 * 60_000;
  const now = Date.now() + ahead;
  const start = {
    id: "task-skew",
    name: "add",
    file: b64("add"),
    inputs: [1, 2],
    proplet_id: "wiped",
    run_id: "run-skew",
    attempt: 1,
    // Started 30 s before the proplet's state dir was wiped (its record began at its start, a moment ago).
    sent_again: new Date(spawnedAt + ahead - 30_000).toISOString(),
    sent_at: new Date(now).toISOString(),
  };
  await manager.publishAsync(`${T}/control/manager/start`, JSON.stringify(start), { qos: 1 });
  const r = await until("the proplet's answer", () => results.find((m) => m.run_id === "run-skew"), 10_000);
  expect(r.error ?? "(none: it ran)").toContain("cannot tell whether it ran");
  expect(r.results).toBe("");
  expect((await http(`${s.url}/health`)).status).toBe(200);
}, 30_000);
