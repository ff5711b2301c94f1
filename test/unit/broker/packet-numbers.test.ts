import { expect, test } from "bun:test";
import mqttPacket from "mqtt-packet";
import "../../../src/broker/client.ts";

// The 65,536-entry number cache is off in every process that loads our MQTT client or broker, and packets written
// without it still carry their numbers (topic length, packet id) exactly.
test("mqtt-packet writes numbers without its 65,536-entry cache, and they read back", () => {
  expect(mqttPacket.writeToStream.cacheNumbers).toBe(false);
  for (const messageId of [1, 255, 256, 4660, 65535]) {
    const topic = "t/".repeat(200 + (messageId % 7));
    const bytes = mqttPacket.generate({
      cmd: "publish",
      topic,
      payload: Buffer.from("x"),
      qos: 1,
      messageId,
      dup: false,
      retain: false,
    });
    const parser = mqttPacket.parser();
    const got: mqttPacket.Packet[] = [];
    parser.on("packet", (p) => got.push(p));
    parser.parse(bytes);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ cmd: "publish", topic, messageId, qos: 1 });
  }
});
