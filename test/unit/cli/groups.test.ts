import { expect, test } from "bun:test";
import { drawDag } from "../../../src/cli/groups.ts";
import type { TaskView } from "../../../src/core/task.ts";

// `workflows get` draws the DAG: each task indented by its depth, with its state and what it waits for.

test("the DAG is drawn by depth with states, run_if and parents, by the names the file gave", () => {
  // Stored ids are scoped by the workflow; the drawing shows the names the file gave.
  const t = (id: string, status: string, depends_on?: string[], run_if?: string) =>
    ({
      id: `wf1.${id}`,
      local_id: id,
      status,
      depends_on: depends_on?.map((d) => `wf1.${d}`),
      run_if,
    }) as unknown as TaskView;
  const text = drawDag([
    t("report", "Pending", ["train", "check"]),
    t("train", "Running", ["fetch"]),
    t("fetch", "Completed"),
    t("check", "Skipped", ["fetch"], "failure"),
  ]);
  expect(text).toBe(
    [
      "fetch [Completed]",
      "  train [Running] ← fetch",
      "  check [Skipped] (if failure) ← fetch",
      "    report [Pending] ← train, check",
      "",
    ].join("\n"),
  );
});
