import { describe, expect, test } from "bun:test";
import { Aedes, type AedesPublishPacket } from "aedes";
import { cacheMatches } from "../../../src/broker/match-cache.ts";

// The broker keeps each topic's subscribers once matched: whoever subscribes or unsubscribes afterwards must still
// get, or stop getting, that topic's messages at once, through a real aedes.

async function broker(): Promise<Aedes> {
  const aedes = await Aedes.createBroker({ id: "match-cache-test" });
  expect(cacheMatches(aedes)).toBe(true);
  return aedes;
}

const publish = (aedes: Aedes, topic: string) =>
  new Promise<void>((resolve, reject) =>
    aedes.publish({ cmd: "publish", topic, payload: Buffer.from("x"), qos: 0, retain: false, dup: false }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
const subscribe = (aedes: Aedes, topic: string, fn: (p: AedesPublishPacket, cb: () => void) => void) =>
  new Promise<void>((resolve) => aedes.subscribe(topic, fn, resolve));
const unsubscribe = (aedes: Aedes, topic: string, fn: (p: AedesPublishPacket, cb: () => void) => void) =>
  new Promise<void>((resolve) => aedes.unsubscribe(topic, fn, resolve));

describe("the broker's matches, cached by topic", () => {
  test("the matcher it wraps is the one this aedes uses", async () => {
    const aedes = await broker();
    const m = (aedes as unknown as { mq: { _matcher: { match(t: string): unknown[] } } }).mq._matcher;
    const a = m.match("m/d/c/c/control/proplet/alive");
    expect(m.match("m/d/c/c/control/proplet/alive")).toBe(a); // the same list: taken from the cache
    await new Promise<void>((r) => aedes.close(() => r()));
  });

  test("a subscription added or removed after a topic was matched changes who gets its next message", async () => {
    const aedes = await broker();
    const topic = "m/d/c/c/control/proplet/alive";
    const got = { exact: 0, wildcard: 0, other: 0 };
    const exact = (_p: AedesPublishPacket, cb: () => void) => {
      got.exact++;
      cb();
    };
    const wildcard = (_p: AedesPublishPacket, cb: () => void) => {
      got.wildcard++;
      cb();
    };
    const other = (_p: AedesPublishPacket, cb: () => void) => {
      got.other++;
      cb();
    };
    await subscribe(aedes, topic, exact);
    await subscribe(aedes, "m/d/c/c/control/manager/start", other);
    await publish(aedes, topic);
    await publish(aedes, topic);
    expect(got).toEqual({ exact: 2, wildcard: 0, other: 0 });

    await subscribe(aedes, "m/d/c/c/control/proplet/#", wildcard);
    await publish(aedes, topic);
    expect(got).toEqual({ exact: 3, wildcard: 1, other: 0 });

    await unsubscribe(aedes, topic, exact);
    await publish(aedes, topic);
    expect(got).toEqual({ exact: 3, wildcard: 2, other: 0 });

    await unsubscribe(aedes, "m/d/c/c/control/proplet/#", wildcard);
    await publish(aedes, topic);
    expect(got).toEqual({ exact: 3, wildcard: 2, other: 0 });
    await new Promise<void>((r) => aedes.close(() => r()));
  });

  test("many topics: the cache starts over instead of growing, and answers stay right", async () => {
    const aedes = await broker();
    let n = 0;
    await subscribe(aedes, "fl/rounds/+/updates/+", (_p, cb) => {
      n++;
      cb();
    });
    for (let i = 0; i < 3000; i++) await publish(aedes, `fl/rounds/r${i}/updates/p${i}`);
    expect(n).toBe(3000);
    await new Promise<void>((r) => aedes.close(() => r()));
  });
});
