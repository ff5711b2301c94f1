import { expect, test } from "bun:test";
import { splitInputs } from "../../../src/core/inputs-arg.ts";

test("--inputs splits at commas, keeping a JSON list, object or string whole", () => {
  expect(splitInputs("10,20")).toEqual(["10", "20"]);
  expect(splitInputs("Ada")).toEqual(["Ada"]);
  // A component's list<s32> and a k: the list's commas used to cut it into four inputs.
  expect(splitInputs("[1,2,3],2")).toEqual(["[1,2,3]", "2"]);
  expect(splitInputs('{"x":[1,2],"y":"]"}, 3')).toEqual(['{"x":[1,2],"y":"]"}', "3"]);
  expect(splitInputs(' "a, b" , c')).toEqual(["a, b", "c"]);
  expect(splitInputs('"",x')).toEqual(["", "x"]);
  expect(splitInputs('a"b,c')).toEqual(['a"b', "c"]); // a quote inside plain text is text
  expect(splitInputs("")).toEqual([]);
});

test("--inputs refuses what it used to drop or cut in silence, saying which input", () => {
  expect(splitInputs("1,,2")).toContain("input 2 is empty");
  expect(splitInputs("1,")).toContain("input 2 is empty");
  expect(splitInputs(",")).toContain("input 1 is empty");
  expect(splitInputs("[1,2")).toContain("input 1 opens [ without closing it");
  expect(splitInputs('x,"abc')).toContain("input 2 opens a quote it does not close");
  expect(splitInputs("[1] 2")).toContain("separate inputs with commas");
  expect(splitInputs('"\\q"')).toContain("not a valid JSON string");
});
