import { afterAll, beforeAll, expect, test } from "bun:test";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { mulberry32 } from "../../scripts/chaos/prng.ts";
import { http, identity, type Serve, startServe, until } from "../helpers.ts";
import { rawSession } from "../mqtt-raw.ts";

// The broker's own PUBLISH reader (src/broker/fast-publish.ts) against what the ACL decided before it, by a seeded
// model: sessions of random PUBLISHes, honest and hostile, written in one go or cut at random places into reads
// that the broker takes whole or through mqtt-packet. Every QoS 0 message before the first refusal arrives; a QoS 1
// one before it may (it is published once its PUBACK is written); nothing after it, and nothing refused, arrives;
// the connection is closed exactly when something was refused.

let s: Serve;
let observer: mqtt.MqttClient;
const seen: { s: number; n: number }[] = [];
const T = "m/default/c/default/control";
const ALIVE = `${T}/proplet/alive`;
const SEED = Number(process.env.FUZZ_SEED ?? 7);
const SESSIONS = 60;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--no-proxy"] });
  observer = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
    clientId: "fuzz-observer",
    ...(await identity(s.url, "manager", "fuzz-observer")),
    reconnectPeriod: 0,
  });
  observer.on("message", (_t, payload) => {
    try {
      const m = JSON.parse(payload.toString());
      if (typeof m.s === "number") seen.push({ s: m.s, n: m.n });
    } catch {}
  });
  await observer.subscribeAsync(`${T}/proplet/+`, { qos: 1 });
});
afterAll(async () => {
  await observer?.endAsync(true);
  await s?.kill("SIGKILL");
});

type Planned = { bytes: Buffer; ok: boolean; qos: 0 | 1; n: number };

test(`random PUBLISH sessions cut at random: what arrives is what the ACL let through (seed ${SEED})`, async () => {
  const rnd = mulberry32(SEED);
  const int = (n: number) => Math.floor(rnd() * n);
  const login = await identity(s.url, "proplet", "fuzz-p");
  for (let sess = 0; sess < SESSIONS; sess++) {
    const plan: Planned[] = [];
    const count = 1 + int(12);
    for (let n = 0; n < count; n++) {
      const qos = int(2) as 0 | 1;
      const body = (o: object) => Buffer.from(JSON.stringify({ s: sess, n, ...o }));
      // Mostly honest; now and then one of the refusals.
      const kind =
        rnd() < 0.8 ? "ok" : ["victim", "noid", "notjson", "topic", "badutf8", "retain", "wildcard"][int(7)]!;
      const topic =
        kind === "topic"
          ? `${T}/manager/start`
          : kind === "wildcard"
            ? `${T}/proplet/+`
            : kind === "badutf8"
              ? Buffer.concat([Buffer.from(ALIVE), Buffer.from([0xff])])
              : ALIVE;
      const payload =
        kind === "victim"
          ? body({ proplet_id: "fuzz-victim" })
          : kind === "noid"
            ? body({ status: "alive" })
            : kind === "notjson"
              ? Buffer.from(`{"s":${sess},"n":${n},`)
              : body({ proplet_id: "fuzz-p", status: "alive" });
      const bytes = mqttPacket.generate({
        cmd: "publish",
        topic: topic as string,
        payload,
        qos,
        messageId: 1 + int(65535),
        dup: false,
        retain: kind === "retain",
      });
      plan.push({ bytes, ok: kind === "ok", qos, n });
    }
    const all = Buffer.concat(plan.map((p) => p.bytes));
    const sock = await rawSession(s.mqttPort, "fuzz-p", login);
    const closed = sock.gone.then(() => true);
    // Cut into 1 to 3 reads at random places (the broker's own reader takes whole ones, mqtt-packet the rest).
    const cuts = Array.from({ length: int(3) }, () => int(all.length)).sort((a, b) => a - b);
    let at = 0;
    for (const cut of [...cuts, all.length]) {
      if (cut > at && !sock.destroyed) sock.write(all.subarray(at, cut));
      at = Math.max(at, cut);
      await Bun.sleep(int(2) * 20);
    }
    const refusedAt = plan.findIndex((p) => !p.ok);
    const before = refusedAt < 0 ? plan : plan.slice(0, refusedAt);
    const sure = before.filter((p) => p.qos === 0).map((p) => p.n);
    const maybe = new Set(before.map((p) => p.n));
    await until(`session ${sess}'s QoS 0 messages`, () =>
      sure.every((n) => seen.some((m) => m.s === sess && m.n === n)),
    );
    const wasClosed = await Promise.race([closed, Bun.sleep(refusedAt < 0 ? 100 : 3000).then(() => false)]);
    if (refusedAt >= 0) await Bun.sleep(50);
    else await until(`session ${sess}'s every message`, () => seen.filter((m) => m.s === sess).length === plan.length);
    const got = seen.filter((m) => m.s === sess).map((m) => m.n);
    const wrong = got.filter((n) => !maybe.has(n));
    expect({ sess, wrong, closed: wasClosed }).toEqual({ sess, wrong: [], closed: refusedAt >= 0 });
    expect(new Set(got).size).toBe(got.length); // none twice
    sock.destroy();
  }
  expect((await http(`${s.url}/proplets/fuzz-victim`)).status).toBe(404);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
