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

  test("group state as upstream, but Running while a task runs, and Interrupted when stopped with no failure", () => {
    expect(groupState([])).toBe(0);
    expect(groupState([2, 0])).toBe(2);
    expect(groupState([3, 5])).toBe(3);
    expect(groupState([5, 5])).toBe(3);
    expect(groupState([3, 6])).toBe(6);
    expect(groupState([4, 6])).toBe(4);
    expect(groupState([3, 0])).toBe(0);
    // A failure branch (or a sibling of a task a user stopped) still running: the group runs (upstream: 4).
    expect(groupState([4, 2])).toBe(2);
    expect(groupState([6, 2])).toBe(2);
    expect(groupState([4, 1])).toBe(2);
  });

  test("a skipped task says why: a parent stopped, failed, or none failed for run_if: failure", () => {
    const d = decide([
      { id: "stopped", state: 6 },
      { id: "failed", state: 4 },
      { id: "done", state: 3 },
      { id: "a", state: 0, depends_on: ["stopped"] },
      { id: "b", state: 0, depends_on: ["failed"] },
      { id: "c", state: 0, depends_on: ["done"], run_if: "failure" },
      { id: "d", state: 0, depends_on: ["a"] },
    ]);
    expect(d.skip.sort()).toEqual(["a", "b", "c", "d"]);
    expect(d.why).toEqual({
      a: "a task it depends on was stopped",
      b: "a task it depends on failed (run_if: success)",
      c: "no task it depends on failed (run_if: failure)",
      d: "a task it depends on did not run",
    });
  });
});
