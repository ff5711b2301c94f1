import { describe, expect, test } from "bun:test";
import mqttPacket from "mqtt-packet";
import { addresseeOf, clientIdRefusal, sharedManagerClientId } from "../../../src/core/acl.ts";
import { AddressLimiter, isLoopback } from "../../../src/core/address-limit.ts";
import { FrameScanner } from "../../../src/core/mqtt-frame.ts";

const channel = { domainId: "d", channelId: "c" };

describe("FrameScanner", () => {
  const publish = (n: number) =>
    mqttPacket.generate({ cmd: "publish", topic: "t", payload: Buffer.alloc(n), qos: 0, dup: false, retain: false });

  test("follows packets across chunk boundaries and refuses the first one over the limit", () => {
    const stream = Buffer.concat([publish(10), mqttPacket.generate({ cmd: "pingreq" }), publish(300), publish(5000)]);
    const s = new FrameScanner();
    // Byte by byte: the same verdict as whole.
    let why: string | undefined;
    for (let i = 0; i < stream.length && !why; i++) why = s.scan(stream.subarray(i, i + 1), 1000);
    expect(why).toContain("over the limit of 1000");
    expect(new FrameScanner().scan(stream.subarray(0, stream.length - publish(5000).length), 1000)).toBeUndefined();
  });

  test("a 256 MiB declaration is refused at its header; a fifth length byte is malformed", () => {
    expect(new FrameScanner().scan(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]), 8192)).toContain("268435455");
    expect(new FrameScanner().scan(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]), 1 << 30)).toBe(
      "malformed remaining length",
    );
  });
});

describe("AddressLimiter", () => {
  test("caps open connections and the rate per address, loopback apart", () => {
    const l = new AddressLimiter((a) => (isLoopback(a) ? { max: 5, perSecond: 5 } : { max: 2, perSecond: 1 }));
    expect(l.admit("10.0.0.1", 0)).toBeUndefined();
    expect(l.admit("10.0.0.1", 0)).toBeUndefined();
    expect(l.admit("10.0.0.1", 0)).toContain("at most 2");
    expect(l.admit("10.0.0.2", 0)).toBeUndefined(); // another address has its own
    l.release("10.0.0.1");
    expect(l.admit("10.0.0.1", 0)).toContain("faster than 1 a second"); // the burst is spent
    expect(l.admit("10.0.0.1", 1000)).toBeUndefined();
    for (let i = 0; i < 5; i++) expect(l.admit("::ffff:127.0.0.1", 0)).toBeUndefined();
    expect(l.admit("::ffff:127.0.0.1", 0)).toContain("at most 5");
  });
});

describe("client ids and addressees", () => {
  const p = { id: "p1", kind: "proplet" as const };
  test("a client id is the entity id or starts with it and a dash; persistent sessions only under the id", () => {
    expect(clientIdRefusal(p, "p1", false, channel)).toBeUndefined();
    expect(clientIdRefusal(p, "p1-test", true, channel)).toBeUndefined();
    expect(clientIdRefusal(p, "p1-test", false, channel)).toContain("persistent session");
    expect(clientIdRefusal(p, "p10", true, channel)).toContain("is not p1");
    expect(clientIdRefusal(p, "proxy-x", true, channel)).toContain("is not p1");
    expect(clientIdRefusal(p, sharedManagerClientId(channel), false, channel)).toBeTruthy();
    expect(clientIdRefusal({ id: "m", kind: "manager" }, sharedManagerClientId(channel), false, channel)).toBe(
      undefined,
    );
  });

  test("a message names its proplet unless it is a broadcast", () => {
    expect(addresseeOf({ proplet_id: "p1" })).toBe("p1");
    expect(addresseeOf({ proplet_id: "p1", broadcast: true })).toBeUndefined();
    expect(addresseeOf({ id: "t" })).toBeUndefined();
    expect(addresseeOf(null)).toBeUndefined();
  });
});
