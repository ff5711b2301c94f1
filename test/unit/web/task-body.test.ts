import { describe, expect, test } from "bun:test";
import { TaskCreate } from "../../../src/core/task.ts";
import { entryOf, exportsOf, fromBase64, prefill, taskBody } from "../../../web/task-body.ts";
import { b64, fixture } from "../../helpers.ts";

// The console's create form as data (web/task-body.ts): what it sends for what is typed, what it prefills from a
// task, and the exports it reads from a module in the browser.

const form = (fields: Record<string, string>) => {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.set(k, v);
  return f;
};

describe("the create form's body", () => {
  test("every field a task takes, parsed as the API takes it; a new task leaves defaults out", () => {
    const body = taskBody(
      form({
        name: " sum ",
        invoke: "add",
        inputs: "1, 2",
        env: "A=1\nB = two=2\n",
        schedule: "*/5 * * * *",
        timezone: "Europe/Paris",
        misfire: "run_once",
        priority: "50",
        timeout: "30",
        retries: "0",
        requirements: "gpu=true\narch=aarch64\nmin_memory_mb=64",
        metadata: '{"team": "edge"}',
      }),
    );
    expect(body).toEqual({
      name: "sum",
      cli_args: ["--invoke=add"],
      inputs: ["1", "2"],
      env: { A: "1", B: "two=2" },
      schedule: "*/5 * * * *",
      timezone: "Europe/Paris",
      misfire_policy: "run_once",
      timeout_s: 30,
      requirements: { labels: { gpu: "true" }, arch: "aarch64", min_memory_mb: 64 },
      metadata: { team: "edge" },
    });
    expect(TaskCreate.safeParse({ ...body, file: b64("add") }).success).toBe(true);
  });

  test("a copy's body says what was emptied; the form round-trips a task's fields", () => {
    const task = {
      name: "add",
      cli_args: ["--dir=/data::/data", "--invoke=sum"],
      inputs: ["1", "2"],
      env: { A: "1" },
      schedule: "0 3 * * *",
      timezone: "Asia/Tokyo",
      misfire_policy: "run_once",
      priority: 70,
      timeout_s: 30,
      max_retries: 2,
      requirements: { labels: { zone: "lab" }, tee: "tdx" },
      metadata: { n: 3 },
      daemon: true,
    };
    const p = prefill(task);
    expect(p.invoke).toBe("sum");
    const again = taskBody(
      form({
        name: p.name,
        invoke: p.invoke,
        inputs: p.inputs,
        env: p.env,
        schedule: p.schedule,
        timezone: p.timezone,
        misfire: p.misfire,
        priority: p.priority,
        timeout: p.timeout,
        retries: p.retries,
        requirements: p.requirements,
        metadata: p.metadata,
        daemon: "on",
      }),
      true,
      task.cli_args,
    );
    expect(again).toEqual(task);
    const emptied = taskBody(form({ name: "add" }), true);
    expect(emptied).toMatchObject({
      cli_args: [],
      inputs: [],
      env: {},
      schedule: "",
      requirements: {},
      metadata: {},
      max_retries: 0,
    });
  });

  test("a line that is not KEY=VALUE, or metadata that is not a JSON object, names its field", () => {
    expect(() => taskBody(form({ name: "x", env: "NOPE" }))).toThrow('env: "NOPE" is not KEY=VALUE');
    expect(() => taskBody(form({ name: "x", requirements: "=x" }))).toThrow("requirements:");
    expect(() => taskBody(form({ name: "x", metadata: "{team" }))).toThrow("metadata: not JSON");
    expect(() => taskBody(form({ name: "x", metadata: "[1]" }))).toThrow("metadata: must be an object");
  });
});

describe("a module's exports, read in the browser", () => {
  test("functions with their signatures, and what a run calls, as the proplet chooses", () => {
    const add = exportsOf(fixture("add"));
    expect(add.functions).toEqual([{ name: "add", signature: "add(i32, i32) → i32" }]);
    expect(entryOf(add, "add", "")).toEqual({ ok: true, text: "It will call add (its name)." });
    expect(entryOf(add, "sum", "add")).toEqual({ ok: true, text: "It will call add (the function chosen)." });
    expect(entryOf(add, "sum", "")).toMatchObject({
      ok: false,
      text: expect.stringContaining("It cannot run: no export"),
    });
    expect(entryOf(add, "add", "nope").ok).toBe(false);
    const main = exportsOf(fixture("main-only"));
    expect(entryOf(main, "anything", "")).toEqual({
      ok: false,
      text: "It will call main (anything is not an export).",
    });
    const command = exportsOf(fromBase64(b64("hello")));
    expect(entryOf(command, "hello", "").text).toContain("WASI command (_start)");
  });

  test("a component, or bytes that are no module, say so instead of listing", () => {
    expect(exportsOf(fixture("calc.component")).note).toContain("a component");
    expect(exportsOf(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 200])).note).toContain("not a module");
    expect(exportsOf(new Uint8Array([1, 2, 3])).functions).toEqual([]);
  });
});
