import { expect, test } from "bun:test";
import { readiness } from "../../../src/cli/readiness.ts";

// /readyz's storage check on a local store: a committed probe write vouches for a while (flash wear), a failed one
// is tried again at the next answer, and without a proof window every answer writes.

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function counted(fail: () => boolean) {
  const calls = { n: 0 };
  const probe = async () => {
    calls.n++;
    if (fail()) throw new Error("disk full");
  };
  return { calls, probe };
}

test("a committed probe vouches for the proof window: later answers write nothing", async () => {
  const { calls, probe } = counted(() => false);
  const ready = readiness({ probe, proofMs: 60_000, broker: () => ({ name: "broker", ok: true }) });
  expect((await ready())[0]).toEqual({ name: "storage", ok: true });
  await wait(1100); // past the 1 s answer cache
  expect((await ready())[0]).toEqual({ name: "storage", ok: true });
  expect(calls.n).toBe(1);
});

test("a failing store is probed again at every answer, and its recovery seen", async () => {
  let broken = true;
  const { calls, probe } = counted(() => broken);
  const ready = readiness({ probe, proofMs: 60_000, broker: () => ({ name: "broker", ok: true }) });
  expect((await ready())[0]).toMatchObject({ name: "storage", ok: false });
  await wait(1100);
  broken = false;
  expect((await ready())[0]).toEqual({ name: "storage", ok: true });
  expect(calls.n).toBe(2);
});

test("without a proof window (PostgreSQL) every answer past the cache writes", async () => {
  const { calls, probe } = counted(() => false);
  const ready = readiness({ probe, broker: () => ({ name: "broker", ok: true }) });
  await ready();
  await wait(1100);
  await ready();
  expect(calls.n).toBe(2);
});
