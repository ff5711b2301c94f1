import { expect, test } from "bun:test";
import { typoKey } from "../../../src/core/nearest.ts";
import { CLIENT_FIELD_NAMES } from "../../../src/core/task.ts";

// A body's key that nearly names a field is refused naming it (core/nearest.ts typoKey); the look is bounded, so a
// body of made-up keys from an admin's client costs no edit distance per key.

test("a typo is named with the field meant; upstream's own fields and far keys pass", () => {
  expect(typoKey({ name: "a", inptus: [1] }, CLIENT_FIELD_NAMES)).toBe("inptus: not a field (did you mean inputs?)");
  expect(typoKey({ id: "x", state: 3, status: "Completed", colour: "blue" }, CLIENT_FIELD_NAMES)).toBeUndefined();
  // A word of a field (the CLI's flag for it), or all of it but its end: `"retries": 3` ran a task once, in silence.
  expect(typoKey({ name: "a", retries: 3 }, CLIENT_FIELD_NAMES)).toBe(
    "retries: not a field (did you mean max_retries?)",
  );
  expect(typoKey({ name: "a", max_retry: 3 }, CLIENT_FIELD_NAMES)).toBe(
    "max_retry: not a field (did you mean max_retries?)",
  );
  expect(typoKey({ name: "a", foo: 1, label: "x" }, CLIENT_FIELD_NAMES)).toBeUndefined();
});

test("100,000 made-up keys: looked at 64 of them, in far less than the time an edit distance each takes", () => {
  const body: Record<string, number> = {};
  for (let i = 0; i < 100_000; i++) body[`zq${i.toString(36).padStart(8, "x")}`] = i;
  body.inptus = 1; // past the bound: not looked at
  const t0 = performance.now();
  expect(typoKey(body, CLIENT_FIELD_NAMES)).toBeUndefined();
  expect(performance.now() - t0).toBeLessThan(100);
});
