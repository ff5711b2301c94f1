import { expect, test } from "bun:test";
import { Dispatched } from "../../../src/proxy/dispatched.ts";

test("a start grants its proplet (and an unknown asker) its reference, for a while, a bounded number of them", () => {
  const d = new Dispatched(1000, 4);
  d.record("oci://reg.io/a/b", "p1", 0);
  expect(d.allows("reg.io/a/b:latest", "p1", 10)).toBe(true);
  expect(d.allows("reg.io/a/b:latest", undefined, 10)).toBe(true);
  expect(d.allows("reg.io/a/b:latest", "p2", 10)).toBe(false);
  expect(d.allows("reg.io/a/c:latest", "p1", 10)).toBe(false);
  expect(d.allows("reg.io/a/b:latest", "p1", 1001)).toBe(false);
  // http(s) URLs are the proplet's own fetch; a start without a module reference grants nothing.
  d.record("https://example.com/m.wasm", "p1", 0);
  d.record(undefined, "p1", 0);
  expect(d.allows("example.com/m.wasm:latest", undefined, 1)).toBe(false);
  for (let i = 0; i < 10; i++) d.record(`reg.io/m${i}:v1`, "p1", 0);
  expect(d.allows("reg.io/m9:v1", "p1", 1)).toBe(true);
  expect(d.allows("reg.io/m0:v1", "p1", 1)).toBe(false);
});
