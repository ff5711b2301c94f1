import { expect, test } from "bun:test";
import { yamlAliasAt, yamlExpansion } from "../../../src/core/yaml.ts";

// Anchors and aliases are found wherever YAML reads them, whatever their name; text that only looks like one passes.

test("anchors and aliases of any name, in block and flow context, are found with their place", () => {
  const found: [string, string][] = [
    ["a: &a [1]\nb: *a", "&a"],
    ["c: &.l0 x\nd: *.l0", "&.l0"],
    ["x: [ &-1 1, *-1 ]", "&-1"],
    ["? &k k\n: v", "&k"],
    ["&a x: 1", "&a"],
    ["- &a x\n- *a", "&a"],
    ["a: x\r&anc [1]", "&anc"],
    ["a: x, &q 1", "&q"],
    ["a: !!str &x foo", "&x"],
    ["k: {a: 1,&x b: 2}", "&x"],
    ["\uFEFF&a x: 1", "&a"],
    ['a: "x\nq: 0 # x", &a 1', "&a"],
  ];
  for (const [text, token] of found) expect(yamlAliasAt(text)?.token).toBe(token);
  expect(yamlAliasAt("a: 1\nb: *.l0")).toEqual({ line: 2, column: 4, token: "*.l0" });
});

test("a plain scalar's * and & are text: cron expressions, globs in quotes, Tom &Jerry", () => {
  for (const text of [
    "x: 0 */5 * * *",
    "y: Tom &Jerry",
    'name: "*.wasm"',
    'cli_args: ["--glob", "*.x"]',
    "- 0 */5 * * *",
  ]) {
    expect(yamlAliasAt(text)).toBeUndefined();
  }
});

test("what was parsed shows an alias the text check could miss: a shared node, or more than the text holds", () => {
  const shared = [1, 2];
  expect(yamlExpansion({ a: shared, b: shared }, 100)).toBe("a node appears twice");
  expect(yamlExpansion({ a: "x".repeat(5000) }, 10)).toBe("it expands beyond its text");
  expect(yamlExpansion(Bun.YAML.parse("a: [1, 2]\nb: {c: d}"), 20)).toBeUndefined();
});
