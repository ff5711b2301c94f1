import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { mulberry32 } from "../../scripts/chaos/prng.ts";
import { identity, type Serve, startServe } from "../helpers.ts";

// A bounded fuzz of the embedded broker: a few thousand random and mutated MQTT packets from a seeded PRNG, before
// CONNECT (anonymous) and after it (as a provisioned proplet), over raw TCP for about 20 s. serve must stay up and
// healthy with its memory bounded, and an honest client must still get through afterwards.

let s: Serve;
let login: { username: string; password: string };
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--no-proxy"] });
  login = await identity(s.url, "proplet", "fuzzer");
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const T = "m/default/c/default/control";
const SEED = Number(process.env.FUZZ_SEED ?? 25);
const SECONDS = 20;

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;

test(`fuzzed MQTT packets before and after CONNECT leave serve up, healthy and bounded (seed ${SEED})`, async () => {
  const rnd = mulberry32(SEED);
  const int = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const connectPacket = (good: boolean) =>
    mqttPacket.generate({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      clientId: good ? `fuzzer-${int(1e6)}` : `x${int(1e6)}`,
      keepalive: 30,
      username: login.username,
      password: Buffer.from(good ? login.password : "wrong"),
    });
  const valid = (): Buffer => {
    const id = 1 + int(65535);
    const self = JSON.stringify({ proplet_id: "fuzzer", status: "alive", n: int(1e9) });
    const kinds: (() => Buffer)[] = [
      () =>
        mqttPacket.generate({
          cmd: "publish",
          topic: `${T}/proplet/${["alive", "create", "results", "metrics", "output"][int(5)]}`,
          payload: rnd() < 0.5 ? self : bytes(int(200)),
          qos: int(3) as 0 | 1 | 2,
          messageId: id,
          dup: false,
          retain: false,
        }),
      () =>
        mqttPacket.generate({
          cmd: "subscribe",
          messageId: id,
          subscriptions: [{ topic: rnd() < 0.5 ? `${T}/manager/start` : "#", qos: int(3) as 0 | 1 | 2 }],
        }),
      () => mqttPacket.generate({ cmd: "unsubscribe", messageId: id, unsubscriptions: [`${T}/manager/start`] }),
      () => mqttPacket.generate({ cmd: ["puback", "pubrec", "pubrel", "pubcomp"][int(4)] as "puback", messageId: id }),
      () => mqttPacket.generate({ cmd: "pingreq" }),
      () => connectPacket(true), // a second CONNECT is a protocol error
    ];
    return kinds[int(kinds.length)]!();
  };
  const mutate = (p: Buffer): Buffer => {
    const b = Buffer.from(p);
    switch (int(6)) {
      case 0: // flip a few bytes
        for (let i = 0; i < 1 + int(4); i++) b[int(b.length)] = int(256);
        return b;
      case 1: // truncated
        return b.subarray(0, int(b.length));
      case 2: // a huge or malformed remaining length
        return Buffer.concat([Buffer.from([b[0]!, 0xff, 0xff, 0xff, int(2) ? 0x7f : 0xff]), b.subarray(2)]);
      case 3: // random type and flags
        b[0] = int(256);
        return b;
      case 4: // garbage
        return bytes(1 + int(300));
      default:
        return b;
    }
  };

  /** One connection: an optional CONNECT, then `n` packets, then a short wait or the server's close. */
  const session = async (authed: boolean, n: number): Promise<number> => {
    const sock = connect(s.mqttPort, "127.0.0.1");
    sock.on("error", () => {});
    sock.on("data", () => {});
    const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
    await Promise.race([new Promise((r) => sock.once("connect", r)), closed]);
    let sent = 0;
    if (authed) {
      sock.write(connectPacket(rnd() < 0.9));
      sent++;
      await Promise.race([Bun.sleep(20), closed]);
    }
    for (let i = 0; i < n && !sock.destroyed; i++) {
      sock.write(rnd() < 0.6 ? mutate(valid()) : valid());
      sent++;
      if (i % 8 === 7) await Bun.sleep(1);
    }
    await Promise.race([Bun.sleep(30), closed]);
    sock.destroy();
    return sent;
  };

  const before = rssMiB(s.proc.pid);
  let peak = before;
  let packets = 0;
  let sessions = 0;
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end && packets < 6000) {
    const batch = await Promise.all(Array.from({ length: 4 }, () => session(rnd() < 0.7, 1 + int(40))));
    packets += batch.reduce((a, b) => a + b, 0);
    sessions += batch.length;
    if (sessions % 40 === 0) {
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      peak = Math.max(peak, rssMiB(s.proc.pid));
    }
  }
  const after = rssMiB(s.proc.pid);
  peak = Math.max(peak, after);
  console.log(
    `fuzz: ${packets} packets in ${sessions} connections; serve RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB (peak ${peak.toFixed(0)})`,
  );
  expect(packets).toBeGreaterThan(1000);
  expect(s.proc.exitCode).toBeNull();
  expect((await fetch(`${s.url}/health`)).status).toBe(200);
  expect(peak - before).toBeLessThan(150);
  // An honest client still connects, subscribes and publishes.
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "fuzzer",
    ...login,
    reconnectPeriod: 0,
  });
  await c.subscribeAsync(`${T}/manager/start`);
  await c.publishAsync(`${T}/proplet/alive`, JSON.stringify({ proplet_id: "fuzzer", status: "alive" }));
  await c.endAsync();
}, 60_000);
