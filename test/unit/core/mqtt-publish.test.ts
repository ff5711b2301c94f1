import { expect, test } from "bun:test";
import mqttPacket from "mqtt-packet";
import { mulberry32 } from "../../../scripts/chaos/prng.ts";
import { wholePublishes } from "../../../src/core/mqtt-publish.ts";

// The broker's own PUBLISH reader must give exactly what mqtt-packet's parser gives, or give nothing (the bytes
// then go to mqtt-packet as before).

/** What mqtt-packet's parser makes of `buf` (MQTT 3.1.1), as plain objects. */
function reference(buf: Buffer): object[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const out: object[] = [];
  parser.on("packet", (p) => out.push({ ...p }));
  parser.on("error", (e) => out.push({ error: e.message }));
  parser.parse(buf);
  return out;
}

const rnd = mulberry32(30);
const int = (n: number) => Math.floor(rnd() * n);
const text = (n: number) => Array.from({ length: n }, () => ["a", "/", "é", "𝄞", "z", "0", "-"][int(7)]).join("");

test("whole QoS 0 and 1 PUBLISH packets read as mqtt-packet reads them: 2,000 random reads of 1 to 4 packets", () => {
  for (let k = 0; k < 2000; k++) {
    const packets = Array.from({ length: 1 + int(4) }, () =>
      mqttPacket.generate({
        cmd: "publish",
        topic: text(1 + int(60)),
        // Sizes across the 1-, 2- and 3-byte remaining lengths, and empty.
        payload: Buffer.alloc([0, int(100), 200 + int(20_000), int(200_000)][int(4)]!, int(256)),
        qos: int(2) as 0 | 1,
        messageId: 1 + int(65535),
        dup: false,
        retain: false,
      }),
    );
    const buf = Buffer.concat(packets);
    const ours = wholePublishes(buf);
    expect(ours).toBeDefined();
    expect(ours!.map((p) => ({ ...p }))).toEqual(reference(buf) as never);
  }
});

test("anything else is left to mqtt-packet: other types, DUP, RETAIN, QoS 2, cut packets, bad lengths", () => {
  const publish = (o: Partial<mqttPacket.IPublishPacket> = {}) =>
    mqttPacket.generate({ cmd: "publish", topic: "a/b", payload: "{}", qos: 0, dup: false, retain: false, ...o });
  const good = publish();
  expect(wholePublishes(good)).toHaveLength(1);
  const refused: [string, Buffer][] = [
    ["empty", Buffer.alloc(0)],
    ["a PINGREQ", mqttPacket.generate({ cmd: "pingreq" })],
    ["a PUBLISH then a PINGREQ", Buffer.concat([good, mqttPacket.generate({ cmd: "pingreq" })])],
    ["a PUBACK", mqttPacket.generate({ cmd: "puback", messageId: 7 })],
    ["RETAIN", publish({ retain: true })],
    ["DUP at QoS 1", publish({ qos: 1, messageId: 3, dup: true })],
    ["QoS 2", publish({ qos: 2, messageId: 3 })],
    ["both QoS bits", Buffer.from([0x36, ...good.subarray(1)])],
    ["cut short", good.subarray(0, good.length - 1)],
    ["a whole packet and part of the next", Buffer.concat([good, good.subarray(0, 3)])],
    ["a topic longer than its packet", Buffer.from([0x30, 0x04, 0x00, 0x09, 0x61, 0x62])],
    ["no room for the topic's length", Buffer.from([0x30, 0x01, 0x00])],
    ["no room for the message id", Buffer.from([0x32, 0x04, 0x00, 0x02, 0x61, 0x62])],
    ["a remaining length of five bytes", Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00])],
    ["a remaining length cut off", Buffer.from([0x30, 0xff])],
  ];
  for (const [what, buf] of refused) expect({ what, read: wholePublishes(buf) }).toEqual({ what, read: undefined });
});

test("odd but whole packets read as mqtt-packet reads them: message id 0, lengths not minimally encoded, bad UTF-8, NUL, no payload", () => {
  const body = [0x00, 0x03, 0x61, 0x2f, 0x62]; // topic "a/b"
  const odd: [string, Buffer][] = [
    ["QoS 1 with message id 0", Buffer.from([0x32, 7, ...body, 0x00, 0x00])],
    ["QoS 1, no payload", Buffer.from([0x32, 7, ...body, 0xff, 0xff])],
    ["a remaining length in two bytes where one would do", Buffer.from([0x30, 0x85, 0x00, ...body])],
    ["a remaining length in four bytes", Buffer.from([0x30, 0x87, 0x80, 0x80, 0x00, ...body, 0x7b, 0x7d])],
    ["invalid UTF-8 in the topic", Buffer.from([0x30, 6, 0x00, 0x04, 0x61, 0xff, 0xc0, 0xaf])],
    ["a lone surrogate encoded in the topic", Buffer.from([0x30, 5, 0x00, 0x03, 0xed, 0xa0, 0x80])],
    ["a NUL in the topic", Buffer.from([0x30, 5, 0x00, 0x03, 0x61, 0x00, 0x62])],
    ["an empty topic", Buffer.from([0x30, 4, 0x00, 0x00, 0x7b, 0x7d])],
  ];
  for (const [what, buf] of odd) {
    const ours = wholePublishes(buf);
    expect({ what, ours: ours?.map((p) => ({ ...p })) }).toEqual({ what, ours: reference(buf) as never });
  }
});

test("payloads are views of the read, one per packet: no two packets share a payload object", () => {
  const buf = Buffer.concat(
    Array.from({ length: 3 }, (_, i) =>
      mqttPacket.generate({ cmd: "publish", topic: "t", payload: `{"n":${i}}`, qos: 0, dup: false, retain: false }),
    ),
  );
  const got = wholePublishes(buf)!;
  expect(new Set(got.map((p) => p.payload)).size).toBe(3);
  expect(got.map((p) => p.payload.toString())).toEqual(['{"n":0}', '{"n":1}', '{"n":2}']);
});
