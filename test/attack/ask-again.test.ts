import { afterAll, beforeAll, expect, test } from "bun:test";
import type mqtt from "mqtt";
import { b64, http, peer, type Serve, startServe, until, untilEnded } from "../helpers.ts";

// The manager asks a proplet with a run record about a run it no longer lists (its start sent again, same run id)
// and settles the run when no answer comes within the 10 s grace. Another proplet, knowing the run id, sends
// results naming that run: before, each one reset the grace (the run stayed Running for ever and its start went
// to the mute proplet again and again); now only the run's own proplet's answer counts.

const T = "m/default/c/default";
let s: Serve;
const clients: mqtt.MqttClient[] = [];

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await s?.kill("SIGKILL");
});

async function connect(id: string) {
  const c = await peer(s, "proplet", id);
  clients.push(c);
  return c;
}

test("another proplet's results naming the run cannot hold a mute proplet's run past the ask grace", async () => {
  const mute = await connect("mute");
  const meddler = await connect("meddler");
  const starts: { id: string; run_id?: string }[] = [];
  mute.on("message", (_t, p) => starts.push(JSON.parse(p.toString())));
  await mute.subscribeAsync(`${T}/control/manager/start`, { qos: 1 });
  const say = (topic: string, body: Record<string, unknown>) =>
    mute.publishAsync(`${T}/control/proplet/${topic}`, JSON.stringify({ proplet_id: "mute", ...body }), { qos: 1 });
  await say("create", { metadata: { run_ids: true, run_record: true } });
  const beat = setInterval(() => void say("alive", { status: "alive", tasks: [], runs: [] }), 500);
  let meddling: ReturnType<typeof setInterval> | undefined;
  try {
    await until("the mute proplet to be alive", async () => (await http(`${s.url}/proplets/mute`)).body?.alive);
    const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), proplet_id: "mute" });
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    const runId = await until(
      "the start to reach the mute proplet",
      () => starts.find((m) => m.id === c.body.id)?.run_id,
    );
    meddling = setInterval(() => {
      const forged = { task_id: c.body.id, proplet_id: "meddler", run_id: runId, results: "", error: null };
      void meddler.publishAsync(`${T}/control/proplet/results`, JSON.stringify(forged), { qos: 1 }).catch(() => {});
    }, 1000);
    const t = await untilEnded(s.url, c.body.id, "the run to be settled", 25_000);
    expect(t.state).toBe(4);
    // By its name, as lists show it, its id beside it (it said the id alone).
    const name = (await http(`${s.url}/proplets/mute`)).body.name;
    expect(t.error).toBe(`interrupted: proplet ${name} (mute) is no longer running the task`);
    // Asked once: the first start and one sent again.
    expect(starts.filter((m) => m.id === c.body.id).length).toBe(2);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  } finally {
    clearInterval(beat);
    clearInterval(meddling);
  }
}, 40_000);
