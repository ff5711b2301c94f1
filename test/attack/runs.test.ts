import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import {
  b64,
  http,
  identity,
  type Proc,
  propletEnv,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  until,
} from "../helpers.ts";

// Results for runs the manager does not know (issue 26: every execution leaves a run) attacked by a proplet with
// a real identity on a real socket: invented run ids in bulk, a run of another proplet, an oversized run id. A
// run of its own per unknown id is kept, at most 100 per task; another proplet's run is never touched.

const T = "m/default/c/default";
let s: Serve;
let victim: Proc;
let attacker: mqtt.MqttClient;
const ledger = tempDir("propeller-ledger-");

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
  victim = spawnPropeller(["proplet"], {
    ...(await propletEnv(s.url, "victim")),
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_DIRS: ledger,
  });
  const login = await identity(s.url, "proplet", "attacker");
  attacker = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "attacker",
    ...login,
    reconnectPeriod: 0,
  });
  await until("the victim to be alive", async () => (await http(`${s.url}/proplets/victim`)).body?.alive);
}, 30_000);

afterAll(async () => {
  attacker?.end(true);
  await victim?.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

const result = (body: Record<string, unknown>) =>
  attacker.publishAsync(`${T}/control/proplet/results`, JSON.stringify(body), { qos: 1 });

describe("results for unknown runs", () => {
  test("invented run ids in bulk add at most 100 runs to a task; serve stays healthy", async () => {
    const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
    for (let i = 0; i < 300; i++)
      await result({ task_id: c.body.id, proplet_id: "attacker", run_id: `forged-${i}`, results: "", error: "x" });
    await until("the forged runs to be kept", async () => (await http(`${s.url}/tasks/${c.body.id}/runs`)).body.total);
    await Bun.sleep(500);
    const runs = (await http(`${s.url}/tasks/${c.body.id}/runs?limit=1000`)).body;
    expect(runs.total).toBe(100);
    expect(new Set(runs.runs.map((r: { proplet_id: string }) => r.proplet_id))).toEqual(new Set(["attacker"]));
    expect((await http(`${s.url}/health`)).status).toBe(200);
  });

  test("a proplet cannot end or report the run of another proplet, nor name itself as that proplet", async () => {
    const c = await http(`${s.url}/tasks`, "POST", {
      name: "ledger",
      file: b64("ledger"),
      inputs: [3000],
      cli_args: [`--dir=${ledger}::/ledger`],
    });
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    await until("the task to run", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
    const runId = (await http(`${s.url}/tasks/${c.body.id}/runs`)).body.runs[0].run_id;
    // Every proplet sees every start, run ids included: the attacker names the victim's run as its own…
    await result({ task_id: c.body.id, proplet_id: "attacker", run_id: runId, results: "forged", error: null });
    // An oversized run id is no run id (dropped as malformed).
    await result({ task_id: c.body.id, proplet_id: "attacker", run_id: "x".repeat(65), results: "", error: null });
    // …and as the victim: the broker refuses a payload naming another proplet, and drops the connection.
    const forged = { task_id: c.body.id, proplet_id: "victim", run_id: runId, results: "forged", error: null };
    attacker.publish(`${T}/control/proplet/results`, JSON.stringify(forged), { qos: 0 });
    await until("the broker to drop the attacker", () => !attacker.connected, 5000);
    attacker.end(true);
    await Bun.sleep(500);
    const during = (await http(`${s.url}/tasks/${c.body.id}/runs`)).body;
    expect(during.runs.map((r: { run_id: string; state: number }) => [r.run_id, r.state])).toEqual([[runId, 2]]);
    const t = await until(
      "the task to end",
      async () => {
        const t = (await http(`${s.url}/tasks/${c.body.id}`)).body;
        return t.state >= 3 && t;
      },
      15_000,
    );
    expect(t.results).not.toBe("forged");
    const after = (await http(`${s.url}/tasks/${c.body.id}/runs`)).body;
    expect(after.runs.map((r: { run_id: string; proplet_id: string }) => [r.run_id, r.proplet_id])).toEqual([
      [runId, "victim"],
    ]);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 30_000);
});
