import { describe, expect, test } from "bun:test";
import { newTask, redactFile, TaskCreate, taskView } from "../../../src/core/task.ts";
import { fixture } from "../../helpers.ts";

describe("task schema", () => {
  test("inputs accept numbers and strings and become strings", () => {
    const r = TaskCreate.parse({ name: "t", inputs: [1, "a", 2.5] });
    expect(r.inputs).toEqual(["1", "a", "2.5"]);
  });
  test("errors name the field", () => {
    const r = TaskCreate.safeParse({ inputs: [true] });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join("."));
    expect(paths).toContain("name");
    expect(paths).toContain("inputs.0");
  });
  test("priority range, broadcast with proplet_id, non-wasm file are rejected", () => {
    expect(TaskCreate.safeParse({ name: "t", priority: 101 }).success).toBe(false);
    expect(TaskCreate.safeParse({ name: "t", broadcast: true, proplet_id: "p" }).success).toBe(false);
    expect(TaskCreate.safeParse({ name: "t", file: Buffer.from("hello world").toString("base64") }).success).toBe(
      false,
    );
    expect(TaskCreate.safeParse({ name: "t", file: Buffer.from(fixture("add")).toString("base64") }).success).toBe(
      true,
    );
  });
  test("new tasks get upstream defaults and the view redacts the file", () => {
    const file = Buffer.from(fixture("add")).toString("base64");
    const t = newTask("id1", TaskCreate.parse({ name: "add", file }), "2026-01-01T00:00:00.000Z");
    expect(t).toMatchObject({
      state: 0,
      kind: "standard",
      priority: 50,
      cli_args: null,
      daemon: false,
      start_time: "0001-01-01T00:00:00Z",
    });
    const v = taskView(t);
    expect(v.file).toBe(`${file.slice(0, 10)}<REDACTED>${file.slice(-10)}`);
    expect(v.status).toBe("Pending");
    expect(redactFile("short")).toBe("short");
  });
});
