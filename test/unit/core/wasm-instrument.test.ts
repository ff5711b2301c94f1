import { describe, expect, test } from "bun:test";
import { instrument, WasmFormatError } from "../../../src/core/wasm-instrument.ts";
import { fixture } from "../../helpers.ts";

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
