import { expect, test } from "bun:test";
import { ByteRate } from "../../../src/core/byte-rate.ts";

test("a key reads its burst at once, then waits as long as its rate needs; keys are apart", () => {
  const r = new ByteRate({ perSecond: 1000, burst: 3000 });
  expect(r.wait("a", 0)).toBe(0);
  r.spend("a", 3500, 0); // a read may take it below zero
  expect(r.wait("a", 0)).toBe(501); // back above zero after 500 ms
  expect(r.wait("b", 0)).toBe(0);
  expect(r.wait("a", 400)).toBe(101);
  expect(r.wait("a", 501)).toBe(0);
  // Refilled, never past the burst.
  expect(r.wait("a", 100_000)).toBe(0);
  r.spend("a", 3000, 100_000);
  expect(r.wait("a", 100_000)).toBe(1);
});

test("full buckets are let go once many keys were seen: the table holds the keys sending now", () => {
  const r = new ByteRate({ perSecond: 1000, burst: 10 });
  for (let i = 0; i < 5000; i++) r.spend(`k${i}`, 5, i);
  expect(r.size).toBeLessThan(4200);
  r.spend("busy", 100, 6000);
  expect(r.wait("busy", 6000)).toBeGreaterThan(0);
});
