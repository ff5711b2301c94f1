import { afterAll, beforeAll, expect, test } from "bun:test";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { http, identity, type Serve, startServe, until } from "../helpers.ts";
import { type RawSocket, rawSession, tcp } from "../mqtt-raw.ts";

// The broker's own reader of whole QoS 0/1 PUBLISH reads (src/broker/fast-publish.ts) attacked at the edges of
// what it takes: packets cut across reads, other packet types in the same read, packets before the CONNACK,
// MQTT 5, QoS 1 order, sizes, odd topics, a refusal in the middle of a read, WebSocket. Each checks what the
// mqtt-packet path gave before: what gets through, what closes the connection, and that nobody else hears it.

let s: Serve;
let observer: mqtt.MqttClient;
const seen: string[] = [];
const T = "m/default/c/default/control";
const ALIVE = `${T}/proplet/alive`;

beforeAll(async () => {
  // 1 MiB messages: a packet over the limit is cheap to send.
  s = await startServe({ extra: ["--no-local-proplet", "--no-proxy", "--mqtt-max-message-mb", "1"] });
  observer = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "wire-observer",
    ...(await identity(s.url, "manager", "wire-observer")),
    reconnectPeriod: 0,
  });
  observer.on("message", (_topic, payload) => seen.push(payload.toString()));
  await observer.subscribeAsync(`${T}/proplet/+`, { qos: 1 });
});
afterAll(async () => {
  await observer?.endAsync(true);
  await s?.kill("SIGKILL");
});

const publish = (topic: string | Buffer, payload: object | Buffer, o: Partial<mqttPacket.IPublishPacket> = {}) =>
  mqttPacket.generate({
    cmd: "publish",
    topic: topic as string,
    payload: Buffer.isBuffer(payload) ? payload : JSON.stringify(payload),
    qos: 0,
    dup: false,
    retain: false,
    ...o,
  });
const beat = (id: string, n: number, o: Partial<mqttPacket.IPublishPacket> = {}) =>
  publish(ALIVE, { proplet_id: id, status: "alive", n }, o);
/** The heartbeats of `id` the observer heard, by their `n`. */
const heard = (id: string) =>
  seen
    .map((m) => JSON.parse(m))
    .filter((m) => m.proplet_id === id && typeof m.n === "number")
    .map((m) => m.n);
/** Whether the broker closes `sock` within `ms` (what it sends is read and dropped, or no close is seen). */
const closes = (sock: RawSocket, ms = 3000) =>
  Promise.race([sock.resume().gone.then(() => true), Bun.sleep(ms).then(() => false)]);
/** A raw PUBLISH: header byte, remaining length (one byte), then `rest` as it is. */
const rawPublish = (rest: number[]) => Buffer.from([0x30, rest.length, ...rest]);
const topicBytes = (t: Buffer) => [t.length >> 8, t.length & 0xff, ...t];

test("a PUBLISH cut across reads, then whole ones behind it: all arrive, in order, each QoS 1 one acknowledged", async () => {
  const sock = await rawSession(s.mqttPort, "wire-1", await identity(s.url, "proplet", "wire-1"));
  const first = beat("wire-1", 1, { qos: 1, messageId: 11 });
  sock.write(first.subarray(0, 5));
  await Bun.sleep(100); // its own read: mqtt-packet holds part of a packet
  sock.write(Buffer.concat([first.subarray(5), beat("wire-1", 2, { qos: 1, messageId: 12 })]));
  await Bun.sleep(100);
  sock.write(Buffer.concat([beat("wire-1", 3), beat("wire-1", 4, { qos: 1, messageId: 14 })]));
  await until("four heartbeats", () => heard("wire-1").length === 4);
  expect(heard("wire-1")).toEqual([1, 2, 3, 4]);
  await until("three PUBACKs", () => sock.packets.filter((p) => p.cmd === "puback").length === 3);
  expect(sock.packets.map((p) => p.messageId)).toEqual([11, 12, 14]);
  sock.destroy();
});

test("another proplet's heartbeat cut across reads, its end arriving with whole packets: refused, nobody hears it", async () => {
  const sock = await rawSession(s.mqttPort, "wire-2", await identity(s.url, "proplet", "wire-2"));
  const forged = beat("wire-victim", 1);
  sock.write(forged.subarray(0, forged.length - 3));
  await Bun.sleep(100);
  sock.write(Buffer.concat([forged.subarray(forged.length - 3), beat("wire-2", 2)]));
  expect(await closes(sock)).toBe(true);
  await Bun.sleep(200);
  expect(heard("wire-victim")).toEqual([]);
  expect(heard("wire-2")).toEqual([]);
  expect((await http(`${s.url}/proplets/wire-victim`)).status).toBe(404);
});

test("other packet types in the same read as PUBLISHes: each answered in order (PUBACK, PINGRESP, SUBACK)", async () => {
  const sock = await rawSession(s.mqttPort, "wire-3", await identity(s.url, "proplet", "wire-3"));
  sock.write(
    Buffer.concat([
      beat("wire-3", 1, { qos: 1, messageId: 31 }),
      mqttPacket.generate({ cmd: "pingreq" }),
      mqttPacket.generate({
        cmd: "subscribe",
        messageId: 32,
        subscriptions: [{ topic: `${T}/manager/start`, qos: 0 }],
      }),
      beat("wire-3", 2),
    ]),
  );
  await until("three answers", () => sock.packets.length >= 3);
  expect(sock.packets.map((p) => p.cmd)).toEqual(["puback", "pingresp", "suback"]);
  // aedes publishes a QoS 1 message once its PUBACK is written, a QoS 0 one at once: 2 may come before 1 (as
  // through mqtt-packet).
  await until("both heartbeats", () => heard("wire-3").length === 2);
  expect(heard("wire-3").sort()).toEqual([1, 2]);
  sock.destroy();
});

/** CONNECT bytes, MQTT 3.1.1 unless `version` says otherwise. */
const connect = (clientId: string, login: { username: string; password: string }, version: 3 | 4 | 5 = 4) =>
  mqttPacket.generate({
    cmd: "connect",
    protocolId: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    clean: true,
    clientId,
    keepalive: 60,
    username: login.username,
    password: Buffer.from(login.password),
  });

test("PUBLISHes written with the CONNECT, before its CONNACK: one's own arrives, another's closes the connection", async () => {
  const login = await identity(s.url, "proplet", "wire-4");
  const ok = await tcp(s.mqttPort);
  ok.write(Buffer.concat([connect("wire-4", login), beat("wire-4", 1), beat("wire-4", 2)]));
  await until("both heartbeats", () => heard("wire-4").length === 2);
  expect(heard("wire-4")).toEqual([1, 2]);
  ok.destroy();
  const bad = await tcp(s.mqttPort);
  bad.write(Buffer.concat([connect("wire-4", login), beat("wire-4", 3), beat("wire-victim", 1)]));
  expect(await closes(bad)).toBe(true);
  await Bun.sleep(200);
  expect(heard("wire-victim")).toEqual([]);
});

test("MQTT 5 and MQTT 3.1 clients: 5 is refused with what it pipelined; 3.1 takes the same path and the same ACL", async () => {
  const login = await identity(s.url, "proplet", "wire-5");
  const v5 = await tcp(s.mqttPort);
  v5.write(
    Buffer.concat([
      connect("wire-5", login, 5),
      mqttPacket.generate(
        { cmd: "publish", topic: ALIVE, payload: '{"proplet_id":"wire-5","n":1}', qos: 0, dup: false, retain: false },
        { protocolVersion: 5 },
      ),
    ]),
  );
  expect(await closes(v5)).toBe(true);
  const v3 = await tcp(s.mqttPort);
  v3.write(connect("wire-5", login, 3));
  await Bun.sleep(200);
  v3.write(Buffer.concat([beat("wire-5", 2), beat("wire-5", 3)]));
  await until("the 3.1 heartbeats", () => heard("wire-5").length === 2);
  v3.write(beat("wire-victim", 1));
  expect(await closes(v3)).toBe(true);
  await Bun.sleep(200);
  expect(heard("wire-5")).toEqual([2, 3]);
  expect(heard("wire-victim")).toEqual([]);
});

test("200 QoS 1 heartbeats in one write: acknowledged in order, delivered in order", async () => {
  const sock = await rawSession(s.mqttPort, "wire-6", await identity(s.url, "proplet", "wire-6"));
  const ids = Array.from({ length: 200 }, (_, i) => i + 1);
  sock.write(Buffer.concat(ids.map((n) => beat("wire-6", n, { qos: 1, messageId: n }))));
  await until("200 PUBACKs", () => sock.packets.length === 200);
  expect(sock.packets.map((p) => p.messageId)).toEqual(ids);
  await until("200 heartbeats", () => heard("wire-6").length === 200);
  expect(heard("wire-6")).toEqual(ids);
  sock.destroy();
});

test("sizes: a PUBLISH declaring more than the limit is closed on its header; a whole one with a payload over the limit is refused", async () => {
  const login = await identity(s.url, "proplet", "wire-7");
  const big = await rawSession(s.mqttPort, "wire-7", login);
  // 2 MiB declared, 64 KiB sent: the gate sees the header first.
  big.write(Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x01]), Buffer.alloc(64 << 10, 0x61)]));
  expect(await closes(big)).toBe(true);
  // Under the packet limit (1 MiB + 64 KiB) but a payload over 1 MiB: the ACL's bound.
  const over = await rawSession(s.mqttPort, "wire-7", login);
  const payload = Buffer.from(JSON.stringify({ proplet_id: "wire-7", n: 1, pad: "x".repeat((1 << 20) + 10) }));
  over.write(publish(ALIVE, payload));
  expect(await closes(over, 5000)).toBe(true);
  await Bun.sleep(200);
  expect(heard("wire-7")).toEqual([]);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});

test("odd topics in whole packets: bad UTF-8, an overlong '/', a NUL, empty, a length past the packet; each closed, none heard", async () => {
  const login = await identity(s.url, "proplet", "wire-8");
  const body = Buffer.from(JSON.stringify({ proplet_id: "wire-8", n: 1 }));
  const alive = Buffer.from(ALIVE);
  const attempts: [string, Buffer][] = [
    ["the alive topic and a 0xFF byte", publish(Buffer.concat([alive, Buffer.from([0xff])]), body)],
    [
      "an overlong '/'",
      publish(Buffer.concat([Buffer.from(`${T}/proplet`), Buffer.from([0xc0, 0xaf]), Buffer.from("alive")]), body),
    ],
    ["the alive topic and a NUL", publish(Buffer.concat([alive, Buffer.from([0])]), body)],
    ["an empty topic", rawPublish([0, 0, ...body])],
    [
      "a topic length past the packet",
      rawPublish([...topicBytes(alive).map((b, i) => (i === 1 ? b + 40 : b)), ...body.subarray(0, 20)]),
    ],
  ];
  for (const [what, bytes] of attempts) {
    const sock = await rawSession(s.mqttPort, "wire-8", login);
    sock.write(bytes);
    expect({ what, closed: await closes(sock) }).toEqual({ what, closed: true });
  }
  await Bun.sleep(200);
  expect(heard("wire-8")).toEqual([]);
  expect((await http(`${s.url}/proplets/wire-8`)).status).toBe(404);
});

test("a refusal in the middle of a read: the packets after it are not delivered, the connection is closed", async () => {
  const sock = await rawSession(s.mqttPort, "wire-9", await identity(s.url, "proplet", "wire-9"));
  sock.write(
    Buffer.concat([
      beat("wire-9", 1, { qos: 1, messageId: 1 }),
      beat("wire-victim", 2),
      beat("wire-9", 3, { qos: 1, messageId: 3 }),
      beat("wire-9", 4),
    ]),
  );
  expect(await closes(sock)).toBe(true);
  await Bun.sleep(300);
  expect(heard("wire-9").filter((n) => n !== 1)).toEqual([]);
  expect(heard("wire-victim")).toEqual([]);
  expect(sock.packets.filter((p) => p.messageId === 3)).toEqual([]);
});

test("over WebSocket: whole PUBLISHes in one frame get through, another's heartbeat closes it", async () => {
  const login = await identity(s.url, "proplet", "wire-10");
  const ws = new WebSocket(`ws://127.0.0.1:${s.httpPort}/mqtt`, "mqtt");
  ws.binaryType = "arraybuffer";
  const got: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser();
  parser.on("packet", (p) => got.push(p));
  ws.onmessage = (e) => parser.parse(Buffer.from(e.data as ArrayBuffer));
  const closed = new Promise<boolean>((resolve) => ws.addEventListener("close", () => resolve(true)));
  await new Promise((resolve) => (ws.onopen = resolve));
  ws.send(connect("wire-10", login));
  await until("the CONNACK", () => got.some((p) => p.cmd === "connack"));
  ws.send(Buffer.concat([beat("wire-10", 1), beat("wire-10", 2, { qos: 1, messageId: 2 })]));
  await until("both heartbeats", () => heard("wire-10").length === 2);
  await until("the PUBACK", () => got.some((p) => p.cmd === "puback"));
  ws.send(Buffer.concat([beat("wire-10", 3), beat("wire-victim", 1)]));
  expect(await Promise.race([closed, Bun.sleep(3000).then(() => false)])).toBe(true);
  await Bun.sleep(200);
  expect(heard("wire-victim")).toEqual([]);
});

test("an identity revoked while it beats: its connection is closed, what it sends after is heard by nobody", async () => {
  const sock = await rawSession(s.mqttPort, "wire-11", await identity(s.url, "proplet", "wire-11"));
  sock.write(Buffer.concat([beat("wire-11", 1), beat("wire-11", 2)]));
  await until("the first heartbeats", () => heard("wire-11").length === 2);
  expect((await http(`${s.url}/entities/wire-11`, "DELETE")).status).toBeLessThan(300);
  const closed = closes(sock);
  if (!sock.destroyed) sock.write(Buffer.concat([beat("wire-11", 3), beat("wire-11", 4)]));
  expect(await closed).toBe(true);
  await Bun.sleep(200);
  expect(heard("wire-11")).toEqual([1, 2]);
});
