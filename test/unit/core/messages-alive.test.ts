import { expect, test } from "bun:test";
import { mulberry32 } from "../../../scripts/chaos/prng.ts";
import { AliveMsg, decode, plainHeartbeat } from "../../../src/core/messages.ts";

// The heartbeat's quick check (plainHeartbeat) may only answer where AliveMsg answers the same: 20,000 random
// payloads of right and wrong keys and values.

const rnd = mulberry32(30);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: T[]): T => xs[int(xs.length)]!;
const str = () => pick(["", "a", "sim-00001", "é𝄞", "x".repeat(64), "x".repeat(65), "2026-12-07T04:00:00.000Z"]);
const value = (): unknown =>
  pick<() => unknown>([
    str,
    () => int(100),
    () => null,
    () => true,
    () => [],
    () => Array.from({ length: int(4) }, str),
    () => Array.from({ length: 1 + int(3) }, () => pick<unknown>([str(), 1, null, {}])),
    () => ({ a: str() }),
  ])();
const KEYS = ["proplet_id", "status", "namespace", "tasks", "runs", "offline_from", "offline_to", "extra", "__proto__"];

test("plainHeartbeat answers only as AliveMsg does, and answers the usual heartbeat", () => {
  let answered = 0;
  for (let i = 0; i < 20_000; i++) {
    const o: Record<string, unknown> = {};
    for (const k of KEYS) if (rnd() < (k === "proplet_id" ? 0.9 : 0.35)) o[k] = rnd() < 0.5 ? value() : str();
    const json = JSON.parse(JSON.stringify(o)); // as it comes off the wire (an own "__proto__" key included)
    const quick = plainHeartbeat(json);
    if (quick === undefined) continue;
    answered++;
    const z = AliveMsg.safeParse(json);
    expect({ json, ok: z.success }).toEqual({ json, ok: true });
    expect(quick).toEqual(z.data!);
  }
  expect(answered).toBeGreaterThan(200);
  const usual = { proplet_id: "sim-1", status: "alive", namespace: "default", tasks: ["t1"], runs: ["r1"] };
  const got = plainHeartbeat(usual);
  expect(got).toEqual(usual);
  expect(got!.tasks).not.toBe(usual.tasks); // the manager's own arrays, not the broker's parsed ones
});

test("decode takes the quick answer, and the schema's error where the quick check declines", () => {
  const payload = Buffer.from(JSON.stringify({ proplet_id: "p", status: "alive", tasks: [] }));
  expect(decode(AliveMsg, payload, undefined, plainHeartbeat)).toEqual({
    ok: true,
    value: { proplet_id: "p", status: "alive", tasks: [] },
  });
  const bad = Buffer.from(JSON.stringify({ proplet_id: "p", runs: ["x".repeat(65)] }));
  expect(decode(AliveMsg, bad, undefined, plainHeartbeat)).toMatchObject({
    ok: false,
    error: expect.stringContaining("runs.0"),
  });
  expect(decode(AliveMsg, Buffer.from("{"), undefined, plainHeartbeat)).toEqual({
    ok: false,
    error: "payload is not JSON",
  });
});
