import { expect, test } from "bun:test";
import { createServer } from "node:net";
import { Aedes, type Client } from "aedes";
import mqtt from "mqtt";
import { fastPublish } from "../../../src/broker/fast-publish.ts";

// Through a real aedes on node:net: whole PUBLISH packets are taken apart by the broker's own reader (mqtt-packet's
// parser never sees them) and arrive as they were sent; anything else still goes to mqtt-packet. The reader leans
// on aedes' and mqtt-packet's fields (a client's `_parser`, its `_list`): an upgrade that renames them turns the
// reader off, and this test says so.

test("whole QoS 0/1 PUBLISH packets skip mqtt-packet's parser and arrive in order; CONNECT and SUBSCRIBE do not", async () => {
  const aedes = await Aedes.createBroker();
  const parsed: string[] = [];
  aedes.on("client", (c: Client) => {
    const parser = (c as unknown as { _parser: { parse(b: Buffer): number } })._parser;
    const parse = parser.parse.bind(parser);
    parser.parse = (b: Buffer) => {
      parsed.push(b[0]!.toString(16));
      return parse(b);
    };
  });
  const server = createServer((s) => aedes.handle(fastPublish(s)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const got: string[] = [];
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "sub" });
  sub.on("message", (_t, p) => got.push(p.toString()));
  await sub.subscribeAsync("t/#", { qos: 1 });
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "pub" });
  const before = parsed.length;
  for (let i = 0; i < 5; i++) {
    await pub.publishAsync(`t/${i}`, `m${i}`, { qos: (i % 2) as 0 | 1 });
    await Bun.sleep(5);
  }
  await Bun.sleep(100);
  expect(got).toEqual(["m0", "m1", "m2", "m3", "m4"]);
  // Only the subscriber's PUBACKs for the QoS 1 messages it got (type 4) reached mqtt-packet after the connects.
  expect(parsed.slice(before).filter((t) => t !== "40")).toEqual([]);
  await pub.endAsync();
  await sub.endAsync();
  server.close();
  await new Promise<void>((r) => aedes.close(() => r()));
});
