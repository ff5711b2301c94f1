import { expect, test } from "bun:test";
import { touch } from "../../../src/core/lru.ts";

test("touch keeps the most recently used entries, dropping the least recently used past the bound", () => {
  const m = new Map<string, number>();
  touch(m, "a", 1, 3);
  touch(m, "b", 2, 3);
  touch(m, "c", 3, 3);
  touch(m, "a", 10, 3); // used again: now the newest, with its new value
  touch(m, "d", 4, 3); // over the bound: "b", the least recently used, goes
  expect([...m]).toEqual([
    ["c", 3],
    ["a", 10],
    ["d", 4],
  ]);
});
