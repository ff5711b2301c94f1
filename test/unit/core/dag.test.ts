import { describe, expect, test } from "bun:test";
import { decide, groupState, shouldRun, validateDag } from "../../../src/core/dag.ts";

// Pure rules of orchestration, without I/O.

describe("DAG", () => {
  test("validation names the tasks", () => {
    expect(validateDag([{ id: "a" }, { id: "b", depends_on: ["a"] }])).toBeUndefined();
    expect(validateDag([{ id: "a", depends_on: ["a"] }])).toBe("task a depends on itself");
    expect(validateDag([{ id: "a", depends_on: ["x"] }])).toBe("task a depends on x, which is not in the set");
    expect(
      validateDag([
        { id: "a", depends_on: ["c"] },
        { id: "b", depends_on: ["a"] },
        { id: "c", depends_on: ["b"] },
      ]),
    ).toMatch(/circular dependency: (a|b|c) -> (a|b|c) -> (a|b|c) -> (a|b|c)/);
  });

  test("run_if: success needs all parents Completed, failure needs one Failed", () => {
    expect(shouldRun(undefined, [3, 3])).toBe(true);
    expect(shouldRun("success", [3, 5])).toBe(false);
    expect(shouldRun("failure", [3, 4])).toBe(true);
    expect(shouldRun("failure", [3, 6])).toBe(false);
    expect(shouldRun("failure", [])).toBe(true);
  });

  test("skips cascade through all descendants in one pass", () => {
    const d = decide([
      { id: "a", state: 4 },
      { id: "b", state: 0, depends_on: ["a"] },
      { id: "c", state: 0, depends_on: ["b"] },
      { id: "d", state: 0, depends_on: ["c"] },
      { id: "r", state: 0, depends_on: ["a"], run_if: "failure" },
      { id: "s", state: 0, depends_on: ["r"] },
    ]);
    expect(d.skip.sort()).toEqual(["b", "c", "d"]);
    expect(d.start).toEqual(["r"]);
  });

  test("group state as upstream", () => {
    expect(groupState([])).toBe(0);
    expect(groupState([2, 0])).toBe(2);
    expect(groupState([3, 5])).toBe(3);
    expect(groupState([3, 6])).toBe(6);
    expect(groupState([4, 6])).toBe(4);
    expect(groupState([2, 6])).toBe(6);
    expect(groupState([3, 0])).toBe(0);
  });
});
