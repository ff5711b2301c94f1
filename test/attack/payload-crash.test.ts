import { afterAll, beforeAll, expect, test } from "bun:test";
import mqtt from "mqtt";
import { http, identity, type Serve, startServe } from "../helpers.ts";

// One message from a provisioned proplet brought serve's whole process down (found by a fresh-eyes attacker):
// a Rust-style timestamp past what a Date holds made the schema's transform throw inside the bus's decode, and a
// payload nested 100,000 arrays deep overflowed the stack of the broker's ACL when it re-serialized it. Each is
// sent here on a real socket by a real identity; serve must stay up, answer, and still take a sane heartbeat.

const T = "m/default/c/default/control/proplet";
const BIG = { secs_since_epoch: 1e13, nanos_since_epoch: 0 };
const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
let s: Serve;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
}, 30_000);
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const hostile: [string, string][] = [
  ["alive", JSON.stringify({ proplet_id: "att", status: "online", offline_from: BIG, offline_to: BIG })],
  ["metrics", JSON.stringify({ proplet_id: "att", timestamp: BIG })],
  ["task_metrics", JSON.stringify({ proplet_id: "att", task_id: "x", metrics: {}, timestamp: BIG })],
  [
    "alive",
    JSON.stringify({
      proplet_id: "att",
      status: "online",
      offline_from: { secs_since_epoch: 1, nanos_since_epoch: 1e12 },
    }),
  ],
  ["registry/proplet", `{"app_name":"x","junk":${deep(100_000)}}`],
  ["results", `{"task_id":"x","results":${deep(100_000)}}`],
  ["results", `{"task_id":"x","proplet_id":"att","results":${deep(100_000)}}`],
  ["create", `{"proplet_id":"att","metadata":${deep(100_000)}}`],
];

test("hostile timestamps and deep nesting from a proplet: serve stays up and still takes a sane heartbeat", async () => {
  const login = await identity(s.url, "proplet", "att");
  const connect = () =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "att", ...login, reconnectPeriod: 0 });
  for (const [topic, payload] of hostile) {
    // A refused publish closes the connection: a fresh one for each.
    const p = await connect();
    const full = topic === "registry/proplet" ? "m/default/c/default/registry/proplet" : `${T}/${topic}`;
    await p.publishAsync(full, payload, { qos: 0 }).catch(() => {});
    await Bun.sleep(150);
    p.end(true);
    expect(s.proc.exitCode, `serve exited after ${topic}`).toBeNull();
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }
  const p = await connect();
  await p.publishAsync(`${T}/alive`, JSON.stringify({ proplet_id: "att", status: "online" }), { qos: 1 });
  await Bun.sleep(200);
  expect((await http(`${s.url}/proplets/att`)).body.alive).toBe(true);
  p.end(true);
  expect(s.output()).toContain("nests deeper than 32 levels");
}, 60_000);

test("a refused QoS 1 publish is not sent again for good: once refused (the connection closed), its resend is acked and dropped", async () => {
  const login = await identity(s.url, "proplet", "resender");
  const topic = "m/default/c/default/control/manager/start"; // the manager's, never a proplet's
  const said = () => s.output().split(`may not publish on ${topic}`).length - 1;
  const before = said();
  // mqtt.js as a proplet uses it: reconnecting, and sending an unacked QoS 1 publish again after each reconnect.
  const p = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "resender",
    ...login,
    clean: false,
    reconnectPeriod: 100,
  });
  try {
    const acked = p.publishAsync(topic, JSON.stringify({ id: "t" }), { qos: 1 });
    expect(await Promise.race([acked.then(() => "acked"), Bun.sleep(5000).then(() => "never")])).toBe("acked");
    await Bun.sleep(1000);
    // Refused and said once; it was sent again after every reconnect, each time refused and logged.
    expect(said() - before).toBe(1);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  } finally {
    p.end(true);
  }
}, 30_000);
