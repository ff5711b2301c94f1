import { afterAll, beforeAll, expect, test } from "bun:test";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { http, identity, type Serve, startServe, until } from "../helpers.ts";
import { rawSession } from "../mqtt-raw.ts";

// The broker reads whole QoS 0/1 PUBLISH packets itself (src/broker/fast-publish.ts) instead of through
// mqtt-packet. Written as raw bytes in one write, so that path takes them: what gets through is what would have,
// and every refusal of the ordinary path holds (the connection closed, nobody told).

let s: Serve;
let observer: mqtt.MqttClient;
let startWatcher: mqtt.MqttClient;
const seen: string[] = [];
const T = "m/default/c/default/control";

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--no-proxy"] });
  // A manager-kind client subscribed to what proplets send: it sees what the broker let through.
  observer = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "fast-observer",
    ...(await identity(s.url, "manager", "fast-observer")),
    reconnectPeriod: 0,
  });
  observer.on("message", (topic, payload) => seen.push(`${topic} ${payload}`));
  await observer.subscribeAsync(`${T}/proplet/+`, { qos: 1 });
  // And a proplet on the manager's start topic, which a proplet may not publish on.
  startWatcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "fast-watcher",
    ...(await identity(s.url, "proplet", "fast-watcher")),
    reconnectPeriod: 0,
  });
  startWatcher.on("message", (topic, payload) => seen.push(`${topic} ${payload}`));
  await startWatcher.subscribeAsync(`${T}/manager/start`, { qos: 1 });
});
afterAll(async () => {
  await observer?.endAsync(true);
  await startWatcher?.endAsync(true);
  await s?.kill("SIGKILL");
});

const publish = (topic: string, payload: object, o: Partial<mqttPacket.IPublishPacket> = {}) =>
  mqttPacket.generate({
    cmd: "publish",
    topic,
    payload: JSON.stringify(payload),
    qos: 0,
    dup: false,
    retain: false,
    ...o,
  });

test("whole packets get through as before: a heartbeat makes the proplet alive, QoS 1 is acknowledged, two in one write both arrive", async () => {
  const sock = await rawSession(s.mqttPort, "fast-1", await identity(s.url, "proplet", "fast-1"));
  const beat = (n: number) => publish(`${T}/proplet/alive`, { proplet_id: "fast-1", status: "alive", n });
  sock.write(beat(1));
  await until("the heartbeat to make fast-1 alive", async () => (await http(`${s.url}/proplets/fast-1`)).body?.alive);
  sock.write(
    Buffer.concat([
      beat(2),
      publish(`${T}/proplet/alive`, { proplet_id: "fast-1", n: 3 }, { qos: 1, messageId: 4242 }),
    ]),
  );
  await until("the PUBACK", () => sock.packets.some((p) => p.cmd === "puback" && p.messageId === 4242));
  await until(
    "both heartbeats at the observer",
    () => seen.filter((m) => m.includes('"proplet_id":"fast-1"')).length === 3,
  );
  expect(sock.destroyed).toBe(false);
  sock.destroy();
});

test("refusals hold for whole packets: another's id, a wildcard, a topic outside the ACL, RETAIN; each closes the connection and reaches nobody", async () => {
  const login = await identity(s.url, "proplet", "fast-2");
  const attempts: [string, Buffer][] = [
    ["another proplet's heartbeat", publish(`${T}/proplet/alive`, { proplet_id: "victim", status: "alive" })],
    ["a wildcard in the topic", publish(`${T}/proplet/+`, { proplet_id: "fast-2" })],
    ["a manager's topic", publish(`${T}/manager/start`, { id: "t", proplet_id: "fast-2" }, { qos: 1, messageId: 9 })],
    ["a retained heartbeat", publish(`${T}/proplet/alive`, { proplet_id: "fast-2", r: 1 }, { retain: true })],
  ];
  for (const [what, bytes] of attempts) {
    const sock = await rawSession(s.mqttPort, "fast-2", login);
    sock.write(bytes);
    const closed = await Promise.race([sock.gone.then(() => true), Bun.sleep(3000).then(() => false)]);
    expect({ what, closed }).toEqual({ what, closed: true });
  }
  await Bun.sleep(200);
  expect(seen.filter((m) => m.includes("victim") || m.includes("fast-2"))).toEqual([]);
  expect((await http(`${s.url}/proplets/victim`)).status).toBe(404);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
