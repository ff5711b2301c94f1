import { afterAll, beforeAll, expect, test } from "bun:test";
import mqtt from "mqtt";
import { http, identity, peer, propletEnv, type Serve, spawnPropeller, startServe } from "../helpers.ts";
import { rssKb } from "../sandbox-site.ts";

// One proplet identity publishing results of 15 MiB (each within the packet bound) as fast as its socket takes
// them, on two connections: serve read and parsed faster than it could let go, 96 MiB → 1.3 GiB in 15 s, and
// /health took up to 480 ms. Its reads are now held to 8 MiB a second over all its connections
// (src/broker/limits.ts `readRate`): the bytes wait in the socket, TCP holds the sender back, and others go on.

const T = "m/default/c/default";
let s: Serve;
const peers: mqtt.MqttClient[] = [];

beforeAll(async () => {
  s = await startServe();
}, 30_000);
afterAll(async () => {
  for (const p of peers) p.end(true);
  await s?.kill("SIGKILL");
});

test("a proplet flooding 15 MiB results: serve's memory stays bounded, /health answers, and the slowing is said", async () => {
  const big = "A".repeat(15 << 20);
  const before = rssKb(s.proc.pid) / 1024;
  const first = await peer(s, "proplet", "flood");
  // A second connection of the same identity (a client id may start with the identity's id and a dash).
  const second = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "flood-2",
    username: first.options.username,
    password: first.options.password,
    reconnectPeriod: 0,
  });
  peers.push(first, second);
  let stop = false;
  let sent = 0;
  const pump = async (c: mqtt.MqttClient) => {
    while (!stop && c.connected) {
      const payload = JSON.stringify({ task_id: `none-${sent}`, proplet_id: "flood", results: big });
      await new Promise<void>((r) => c.publish(`${T}/control/proplet/results`, payload, { qos: 0 }, () => r()));
      sent++;
    }
  };
  const pumps = peers.map(pump);
  let peak = before;
  let slowest = 0;
  const until = Date.now() + 8000;
  while (Date.now() < until) {
    const t0 = performance.now();
    expect((await http(`${s.url}/health`)).status).toBe(200);
    slowest = Math.max(slowest, performance.now() - t0);
    peak = Math.max(peak, rssKb(s.proc.pid) / 1024);
    await Bun.sleep(200);
  }
  stop = true;
  for (const p of peers) p.end(true);
  void pumps; // a publish waiting on a full socket never calls back once its client is ended
  console.log(`rss ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB; slowest /health ${slowest.toFixed(0)} ms`);
  expect(peak - before).toBeLessThan(400); // before the bound: +1,330 MiB in these 8 s
  expect(s.output()).toContain("proplet flood sends more than 8 MiB a second: its reads are slowed");
}, 60_000);

test("a proplet identity holds at most 4 connections at once; its own client id again takes its session over", async () => {
  const login = await identity(s.url, "proplet", "many");
  const open = (clientId: string) =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId, ...login, reconnectPeriod: 0 });
  const held: mqtt.MqttClient[] = [];
  try {
    for (const id of ["many", "many-1", "many-2", "many-3"]) held.push(await open(id));
    // A fifth, each holding a packet of up to 16 MiB while the proplet's shared rate let it go on slowly.
    await expect(open("many-4")).rejects.toThrow();
    // The same client id again is MQTT's takeover, not a fifth.
    const again = await open("many-1");
    held.push(again);
    expect(again.connected).toBe(true);
    expect(s.output()).toContain("mqtt: refused proplet many (client id many-4): 4 connections of it are open already");
    // Said, as two processes sharing one identity would be: each takeover cuts the other off.
    expect(s.output()).toMatch(
      /mqtt: proplet many: a connection from 127\.0\.0\.1:\d+ takes its session over from 127\.0\.0\.1:\d+; if two proplets run with this identity, each cuts the other off/,
    );
  } finally {
    for (const c of held) c.end(true);
  }
  // Once they are closed, four new ones fit.
  await Bun.sleep(200);
  const fresh: mqtt.MqttClient[] = [];
  try {
    for (const id of ["many-a", "many-b", "many-c", "many-d"]) fresh.push(await open(id));
  } finally {
    for (const c of fresh) c.end(true);
  }
}, 30_000);

test("two proplet processes started with one identity: the takeover is said, and their flapping is a few lines, not four a second", async () => {
  const env = {
    ...(await propletEnv(s.url, "twin")),
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_LIVELINESS_INTERVAL: "1",
  };
  const from = s.output().length;
  const twins = [spawnPropeller(["proplet"], env), spawnPropeller(["proplet"], env)];
  try {
    await Bun.sleep(8000);
    const said = s.output().slice(from).split("\n");
    const count = (has: string) => said.filter((l) => l.includes(has)).length;
    const flaps = said.filter((l) => l.includes("proplet twin")).length;
    console.log(`in 8 s of two processes as twin: ${flaps} lines about it`);
    expect(count("takes its session over from")).toBeGreaterThanOrEqual(1);
    expect(count("takes its session over from")).toBeLessThanOrEqual(1);
    for (const kind of ["reconnected", "is back", "went offline", "is unreachable", "was cut off"])
      expect({ kind, n: count(kind) }).toEqual({ kind, n: Math.min(count(kind), 2) });
  } finally {
    for (const t of twins) await t.kill("SIGKILL");
  }
}, 30_000);
