import { expect, test } from "bun:test";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { drawDag, readSpec } from "../../../src/cli/groups.ts";
import type { TaskView } from "../../../src/core/task.ts";
import { FIXTURES, MAIN, tempDir } from "../../helpers.ts";

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

test("a spec's filepath (no underscore) is refused naming file_path; --tasks' file_path is read like a spec's", () => {
  const dir = tempDir();
  copyFileSync(join(FIXTURES, "add.wasm"), join(dir, "add.wasm"));
  writeFileSync(join(dir, "wf.yaml"), "tasks:\n  - id: a\n    name: add\n    filepath: ./add.wasm\n");
  expect(() => readSpec(join(dir, "wf.yaml"))).toThrow("tasks[0].filepath: not a field (did you mean file_path?)");
  // Without the typo the module goes inline; nothing near a field is left.
  writeFileSync(
    join(dir, "wf.yaml"),
    "tasks:\n  - id: a\n    name: add\n    file_path: ./add.wasm\n    x_note: kept\n",
  );
  const spec = readSpec(join(dir, "wf.yaml")) as { tasks: Record<string, unknown>[] };
  expect(spec.tasks[0]!.file).toBe(readFileSync(join(FIXTURES, "add.wasm")).toString("base64"));
  expect(spec.tasks[0]!.file_path).toBeUndefined();
  // upstream's --tasks flag, relative to the current directory (here: the CLI's own process).
  const r = Bun.spawnSync(
    [process.execPath, MAIN, "workflows", "create", "--tasks", '[{"id":"t1","name":"add","file_path":"./add.wasm"}]'],
    { cwd: dir, env: { ...process.env, PROPELLER_URL: "http://127.0.0.1:9" } },
  );
  // Read first (no ENOENT, no dropped field); then the manager is not there.
  expect(r.stderr.toString()).not.toContain("file_path");
  expect(r.stderr.toString()).toContain("127.0.0.1:9");
  const missing = Bun.spawnSync(
    [process.execPath, MAIN, "workflows", "create", "--tasks", '[{"id":"t1","name":"add","file_path":"./nope.wasm"}]'],
    { cwd: dir, env: { ...process.env, PROPELLER_URL: "http://127.0.0.1:9" } },
  );
  expect(missing.stderr.toString()).toContain("--tasks: tasks[0].file_path");
  expect(missing.stderr.toString()).toContain("ENOENT");
});
