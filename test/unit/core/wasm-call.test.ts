import { describe, expect, test } from "bun:test";
import { chooseEntry, envError, formatResult, parseArgs, parseRuntimeOptions } from "../../../src/core/wasm-call.ts";
import { inspect } from "../../../src/core/wasm-info.ts";
import { fixture } from "../../helpers.ts";

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
    // What may be a secret is not echoed: an --env value without its name, a mistyped option's value.
    for (const args of [["--env=hunter2"], ["--env", "hunter2"], ["--evn=TOKEN=hunter2"], ["hunter2"]]) {
      const e = parseRuntimeOptions(args);
      expect(typeof e).toBe("string");
      expect(e).not.toContain("hunter2");
    }
  });
  test("env names that could be read as something else are refused, values may hold anything but NUL", () => {
    expect(envError({ PATH: "x", my_var: "a\nb", "app.level-2": "" })).toBeUndefined();
    for (const key of ["A=B", "--dir", "-x", "1A", "", "A B", "x".repeat(257)])
      expect(envError({ [key]: "v" })).toContain("is not allowed");
    expect(envError({ K: "a\0b" })).toBe("env K: the value holds a NUL character");
    expect(parseRuntimeOptions(["--env=--dir=/::/x"])).toContain("--env: env name");
  });
});
