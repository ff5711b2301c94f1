import { describe, expect, test } from "bun:test";
import "../../../src/broker/bl-fast.ts";
import BufferListStream from "bl";
import mqttPacket from "mqtt-packet";

// The broker's faster bl reads must answer exactly as bl does: checked against the bytes themselves, for every way
// a stream could cut them into chunks.

/** Deterministic pseudo-random numbers, so a failure can be repeated. */
function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

function chunked(bytes: Buffer, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + Math.floor(rand() * 5);
    out.push(Buffer.from(bytes.subarray(i, i + n)));
    i += n;
  }
  return out;
}

describe("bl, faster", () => {
  test("the bl the broker patches is the one aedes' packet parser uses", () => {
    const parser = require.resolve("mqtt-packet", { paths: [require.resolve("aedes")] });
    expect(require.resolve("bl", { paths: [parser] })).toBe(require.resolve("bl"));
  });

  test("bytes, 16- and 32-bit numbers and text read the same from any chunking, and out of range still throws", () => {
    const rand = rng(7);
    const bytes = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
    for (let round = 0; round < 50; round++) {
      for (const list of [new BufferListStream(), new BufferListStream.BufferList()]) {
        for (const c of chunked(bytes, rand)) list.append(c);
        expect(list.length).toBe(bytes.length);
        expect(list.slice()).toEqual(bytes);
        for (let o = 0; o < bytes.length; o++) expect(list.readUInt8(o)).toBe(bytes[o]!);
        for (let o = 0; o + 2 <= bytes.length; o++) expect(list.readUInt16BE(o)).toBe(bytes.readUInt16BE(o));
        for (let o = 0; o + 4 <= bytes.length; o++) expect(list.readUInt32BE(o)).toBe(bytes.readUInt32BE(o));
        for (let s = 0; s < bytes.length; s += 3)
          for (let e = s + 1; e <= bytes.length; e += 5)
            expect(list.toString("latin1", s, e)).toBe(bytes.toString("latin1", s, e));
        expect(() => list.readUInt8(bytes.length)).toThrow(RangeError);
        expect(() => list.readUInt16BE(bytes.length - 1)).toThrow(RangeError);
      }
    }
  });

  test("mqtt-packet parses publishes fed in random pieces into the packets that were sent", () => {
    const rand = rng(11);
    const sent = Array.from({ length: 200 }, (_, i) => ({
      cmd: "publish" as const,
      topic: `m/default/c/default/control/proplet/${i % 2 ? "alive" : "résults"}`,
      payload: Buffer.from(JSON.stringify({ proplet_id: `p-${i}`, n: "x".repeat(i) })),
      qos: (i % 2) as 0 | 1,
      messageId: i % 2 ? i + 1 : undefined,
      retain: false,
      dup: false,
    }));
    const wire = Buffer.concat(sent.map((p) => mqttPacket.generate(p)));
    const parser = mqttPacket.parser();
    const got: mqttPacket.IPublishPacket[] = [];
    parser.on("packet", (p) => got.push(p as mqttPacket.IPublishPacket));
    parser.on("error", (e) => {
      throw e;
    });
    for (const c of chunked(wire, rand)) parser.parse(c);
    expect(got.map((p) => [p.topic, p.payload.toString(), p.qos, p.messageId])).toEqual(
      sent.map((p) => [p.topic, p.payload.toString(), p.qos, p.messageId]),
    );
  });
});
