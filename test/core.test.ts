import { describe, expect, test } from "bun:test";
import { AliveMsg, decode, ResultMsg, StartMsg } from "../src/core/messages.ts";
import { isAlive, type Proplet, recordHeartbeat } from "../src/core/proplet.ts";
import { roundRobin } from "../src/core/scheduler.ts";
import { newTask, redactFile, TaskCreate, taskView } from "../src/core/task.ts";
import { Timestamp } from "../src/core/time.ts";
import { chooseEntry, formatResult, parseArgs, parseRuntimeOptions } from "../src/core/wasm-call.ts";
import { inspect } from "../src/core/wasm-info.ts";
import { instrument, WasmFormatError } from "../src/core/wasm-instrument.ts";
import { fixture } from "./helpers.ts";

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

describe("messages", () => {
  test("start accepts upstream nulls and numeric inputs", () => {
    const r = decode(
      StartMsg,
      JSON.stringify({ id: "t", name: "add", cli_args: null, file: null, inputs: [10, "20"], daemon: null }),
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value).toMatchObject({ inputs: ["10", "20"], daemon: false, broadcast: false });
  });
  test("malformed payloads are reported, not thrown", () => {
    expect(decode(ResultMsg, "not json")).toEqual({ ok: false, error: "payload is not JSON" });
    const r = decode(AliveMsg, JSON.stringify({ status: "alive" }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain("proplet_id");
  });
  test("timestamps: RFC3339 or Rust SystemTime", () => {
    expect(Timestamp.parse({ secs_since_epoch: 1700000000, nanos_since_epoch: 5e8 })).toBe("2023-11-14T22:13:20.500Z");
    expect(Timestamp.parse("2024-01-01T00:00:00Z")).toBe("2024-01-01T00:00:00Z");
    expect(Timestamp.safeParse("yesterday").success).toBe(false);
  });
});

describe("proplets and scheduling", () => {
  const p = (id: string): Proplet => ({ id, name: id, metadata: {}, alive_history: [] });
  test("round robin rotates by id and wraps", () => {
    const c = [p("b"), p("a"), p("c")];
    expect(roundRobin(c, undefined)?.id).toBe("a");
    expect(roundRobin(c, "a")?.id).toBe("b");
    expect(roundRobin(c, "c")?.id).toBe("a");
    expect(roundRobin(c, "bb")?.id).toBe("c");
    expect(roundRobin([], "a")).toBeUndefined();
  });
  test("alive needs a recent heartbeat and no offline message", () => {
    const now = Date.parse("2026-01-01T00:00:30Z");
    const beat = recordHeartbeat(p("x"), "2026-01-01T00:00:10Z");
    expect(isAlive(beat, now, 30_000)).toBe(true);
    expect(isAlive(beat, now, 10_000)).toBe(false);
    expect(isAlive({ ...beat, offline: true }, now, 30_000)).toBe(false);
    let q = p("y");
    for (let i = 0; i < 15; i++) q = recordHeartbeat(q, new Date(i * 1000).toISOString());
    expect(q.alive_history.length).toBe(10);
  });
});

describe("wasm calls", () => {
  const add = inspect(fixture("add")).functions;
  test("signatures are read from the binary", () => {
    expect(add.get("add")).toEqual({ params: ["i32", "i32"], results: ["i32"] });
    expect(inspect(fixture("main-only")).functions.get("main")).toEqual({ params: ["i64", "f64"], results: ["f64"] });
  });
  test("entry: the named export, else _start for commands, else main/run", () => {
    expect(chooseEntry(add, "add")).toMatchObject({ kind: "call", export: "add" });
    expect(chooseEntry(inspect(fixture("main-only")).functions, "anything")).toMatchObject({
      kind: "call",
      export: "main",
    });
    expect(chooseEntry(inspect(fixture("hello")).functions, "hello")).toEqual({ kind: "command" });
    expect(chooseEntry(add, "nope", "mul")).toContain("the module exports add");
  });
  test("inputs are parsed per parameter type", () => {
    const sig = { params: ["i32", "i64", "f32", "f64"] as const, results: [] };
    expect(parseArgs({ ...sig, params: [...sig.params] }, "f", ["-5", "9007199254740993", "0.1", "1e3"])).toEqual([
      -5,
      9007199254740993n,
      Math.fround(0.1),
      1000,
    ]);
    expect(parseArgs({ params: ["i32"], results: [] }, "f", ["abc"])).toBe('input 0 ("abc") is not a valid i32');
    expect(parseArgs({ params: ["i32"], results: [] }, "f", ["4294967296"])).toContain("not a valid i32");
    expect(parseArgs({ params: ["i32", "i32"], results: [] }, "add", ["1"])).toContain("takes 2 argument(s)");
  });
  test("results are formatted like upstream", () => {
    expect(formatResult({ params: [], results: ["f64"] }, 1)).toBe("1");
    expect(formatResult({ params: [], results: ["f64"] }, 3.5)).toBe("3.5");
    expect(formatResult({ params: [], results: ["f32"] }, Math.fround(0.1))).toBe("0.1");
    expect(formatResult({ params: [], results: ["i64"] }, 5n)).toBe("5");
    expect(formatResult({ params: [], results: [] }, undefined)).toBe("");
  });
  test("runtime options in wasmtime's spelling; unknown ones are errors", () => {
    expect(parseRuntimeOptions(["--dir=/a::/b", "--env", "K=V", "--invoke=f"])).toEqual({
      dirs: [{ host: "/a", guest: "/b" }],
      env: { K: "V" },
      invoke: "f",
    });
    expect(parseRuntimeOptions(["--dir", "/x"])).toEqual({ dirs: [{ host: "/x", guest: "/x" }], env: {} });
    expect(parseRuntimeOptions(["-S", "nn"])).toContain('unsupported runtime option "-S"');
  });
});

describe("interrupt instrumentation", () => {
  test("instrumented modules compute what the originals compute", () => {
    let checks = 0;
    const imports = { propeller: { interrupt: () => void checks++ } };
    const fib = new WebAssembly.Instance(new WebAssembly.Module(instrument(fixture("fib")).bytes), imports)
      .exports as any;
    expect(fib.fib(20)).toBe(6765);
    const add = new WebAssembly.Instance(new WebAssembly.Module(instrument(fixture("add")).bytes), imports)
      .exports as any;
    expect(add.add(10, 20)).toBe(30);
    // The C module's many loops, calls and tables survive the rewrite and still validate.
    expect(() => new WebAssembly.Module(instrument(fixture("hello")).bytes)).not.toThrow();
  });
  test("a pure-Wasm infinite loop reaches the host check", () => {
    let checks = 0;
    const m = new WebAssembly.Module(instrument(fixture("spin")).bytes);
    const spin = new WebAssembly.Instance(m, {
      propeller: {
        interrupt: () => {
          if (++checks > 50) throw new Error("stop");
        },
      },
    }).exports as any;
    expect(() => spin.spin()).toThrow("stop");
    expect(checks).toBe(51);
  });
  test("malformed input is a clear error", () => {
    expect(() => instrument(new TextEncoder().encode("not wasm at all"))).toThrow(WasmFormatError);
    expect(() => instrument(fixture("add").slice(0, 20))).toThrow(/unexpected end/);
  });
});
