import { expect, test } from "bun:test";
import { Lru } from "../../../src/core/lru.ts";

test("an Lru never holds more than its bound, and drops the entries not used since the older generation", () => {
  const c = new Lru<string, number>(4);
  for (let i = 0; i < 100; i++) {
    c.set(`k${i}`, i);
    expect(c.size).toBeLessThanOrEqual(4);
  }
  expect(c.peek("k99")).toBe(99);
  expect(c.has("k0")).toBe(false);
  expect(c.get("k0")).toBeUndefined();
});

test("a read keeps an entry: get moves it to the young generation, peek does not", () => {
  const c = new Lru<string, number>(4); // two entries a generation
  c.set("a", 1);
  c.set("b", 2); // young full: a, b become the old generation
  c.get("a"); // a used again: young again
  c.peek("b"); // b only looked at
  c.set("c", 3); // young (a, c) full: old (b) dropped
  c.set("d", 4); // young (d), old (a, c)
  expect(c.peek("a")).toBe(1);
  expect(c.has("b")).toBe(false);
  expect(c.peek("c")).toBe(3);
});

test("set replaces a value wherever it is; delete and clear remove; null and undefined values are kept", () => {
  const c = new Lru<string, string | null | undefined>(6);
  c.set("a", "1");
  c.set("b", null);
  c.set("c", undefined);
  c.set("a", "2");
  expect(c.get("a")).toBe("2");
  expect(c.has("b")).toBe(true);
  expect(c.get("b")).toBeNull();
  expect(c.has("c")).toBe(true);
  expect(c.delete("b")).toBe(true);
  expect(c.delete("b")).toBe(false);
  expect(c.has("b")).toBe(false);
  c.clear();
  expect(c.size).toBe(0);
});

test("a bound of one keeps the last entry", () => {
  const c = new Lru<string, number>(1);
  c.set("a", 1);
  c.set("b", 2);
  expect(c.size).toBe(1);
  expect(c.get("b")).toBe(2);
  expect(c.has("a")).toBe(false);
});
