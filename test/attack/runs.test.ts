import { afterAll, beforeAll, describe, expect, test } from "bun:test";
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
  untilEnded,
} from "../helpers.ts";

// Results for runs the manager does not know (issue 26: every execution leaves a run) attacked by a proplet with
// a real identity on a real socket: invented run ids in bulk, a run of another proplet, an oversized run id. None
// is kept from a proplet the task was never given; another proplet's run is never touched; a proplet
// that claims a run record and never answers a start sent again holds its run for the grace only.

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
  attacker = await peer(s, "proplet", "attacker");
  await until("the victim to be alive", async () => (await http(`${s.url}/proplets/victim`)).body?.alive);
}, 30_000);

afterAll(async () => {
  attacker?.end(true);
  await victim?.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

const result = (body: Record<string, unknown>) =>
  attacker.publishAsync(`${T}/control/proplet/results`, JSON.stringify(body), { qos: 1 });

describe("results for unknown runs, and a run record that never answers", () => {
  test("invented run ids in bulk from a proplet never given the task add no run to it; serve stays healthy", async () => {
    // (A proplet given the task may add at most 100: test/attack/unknown-runs.test.ts.)
    const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
    for (let i = 0; i < 300; i++)
      await result({ task_id: c.body.id, proplet_id: "attacker", run_id: `forged-${i}`, results: "", error: "x" });
    await Bun.sleep(500); // each was acknowledged (QoS 1): serve has them
    expect((await http(`${s.url}/tasks/${c.body.id}/runs?limit=1000`)).body.total).toBe(0);
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
    const t = await untilEnded(s.url, c.body.id, "the task to end", 15_000);
    expect(t.results).not.toBe("forged");
    const after = (await http(`${s.url}/tasks/${c.body.id}/runs`)).body;
    expect(after.runs.map((r: { run_id: string; proplet_id: string }) => [r.run_id, r.proplet_id])).toEqual([
      [runId, "victim"],
    ]);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 30_000);

  test("a proplet that claims a run record and never answers cannot keep a run Running: settled after the grace", async () => {
    const mute = await peer(s, "proplet", "mute");
    const starts: { id: string; run_id?: string; sent_again?: string }[] = [];
    mute.on("message", (_t, p) => starts.push(JSON.parse(p.toString())));
    await mute.subscribeAsync(`${T}/control/manager/start`, { qos: 1 });
    const say = (topic: string, body: Record<string, unknown>) =>
      mute.publishAsync(`${T}/control/proplet/${topic}`, JSON.stringify({ proplet_id: "mute", ...body }), { qos: 1 });
    await say("create", { metadata: { run_ids: true, run_record: true } });
    const beat = setInterval(() => void say("alive", { status: "alive", tasks: [], runs: [] }), 500);
    try {
      await until("the mute proplet to be alive", async () => (await http(`${s.url}/proplets/mute`)).body?.alive);
      const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), proplet_id: "mute" });
      await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
      const t = await untilEnded(s.url, c.body.id, "the run to be settled", 25_000);
      expect(t.state).toBe(4);
      expect(t.error).toContain("no longer running the task");
      // Asked once: its start again, same run id, with when it was started.
      const mine = starts.filter((m) => m.id === c.body.id);
      expect(mine.length).toBe(2);
      expect(mine[1]!.run_id).toBe(mine[0]!.run_id!);
      expect(typeof mine[1]!.sent_again).toBe("string");
      expect((await http(`${s.url}/health`)).status).toBe(200);
    } finally {
      clearInterval(beat);
      mute.end(true);
    }
  }, 40_000);
});
