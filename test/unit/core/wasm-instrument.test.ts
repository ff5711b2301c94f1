import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { instrument, WasmFormatError } from "../../../src/core/wasm-instrument.ts";
import { assemble, FIXTURES, fixture } from "../../helpers.ts";

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
  test("recursion without a loop reaches the host check; a straight-line leaf never calls it", async () => {
    const wat = `(module
      (func $fib (export "fib") (param i64) (result i64)
        (if (result i64) (i64.lt_u (local.get 0) (i64.const 2)) (then (local.get 0))
          (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1)))
                         (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
      (func (export "leaf") (param i32 i32) (result i32) (i32.mul (local.get 0) (local.get 1)))
      ;; params, two groups of locals, then the counter the loop gets: indices must line up
      (func (export "sum") (param $n i32) (param $k i64) (result i64) (local $i i32) (local $a f64) (local $s i64)
        (loop $l
          (local.set $s (i64.add (local.get $s) (local.get $k)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $s)))`;
    const raw = await assemble(wat);
    let checks = 0;
    const e = new WebAssembly.Instance(new WebAssembly.Module(instrument(raw).bytes), {
      propeller: {
        interrupt: () => {
          if (++checks > 3) throw new Error("stop");
        },
      },
    }).exports as any;
    expect(e.leaf(6, 7)).toBe(42);
    expect(checks).toBe(0);
    expect(e.sum(250_000, 3n)).toBe(750_000n);
    checks = 0;
    expect(() => e.fib(90n)).toThrow("stop"); // ~10^18 calls: only the entry check ends it
  });

  test("a short loop in a function called a million times checks by its count, not once per call", async () => {
    const wat = `(module
      (func $sum8 (param $p i32) (result i32) (local $i i32) (local $s i32)
        (loop $l
          (local.set $s (i32.add (local.get $s) (i32.add (local.get $p) (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 8))))
        (local.get $s))
      (func (export "outer") (param $n i32) (result i32) (local $i i32) (local $x i32)
        (loop $l
          (local.set $x (i32.add (local.get $x) (call $sum8 (i32.const 1))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $x)))`;
    const raw = await assemble(wat);
    let checks = 0;
    const e = new WebAssembly.Instance(new WebAssembly.Module(instrument(raw, 100_000).bytes), {
      propeller: { interrupt: () => void checks++ },
    }).exports as any;
    expect(e.outer(1_000_000)).toBe(1_000_000 * 36);
    // The outer loop's million iterations, a check after each 100,000: 9. (Counting from 0 at every call, the
    // helper's loop called the host a million times.)
    expect(checks).toBe(9);
  });

  test("malformed input is a clear error", () => {
    expect(() => instrument(new TextEncoder().encode("not wasm at all"))).toThrow(WasmFormatError);
    expect(() => instrument(fixture("add").slice(0, 20))).toThrow(/unexpected end/);
  });
});

test("hostile bytes: a mutated module is refused as malformed, or instrumented into one that validates", () => {
  const mods = readdirSync(FIXTURES)
    .filter((f) => f.endsWith(".wasm") && !f.includes("component"))
    .map((f) => fixture(f.replace(/\.wasm$/, "")));
  let seed = 20261128;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  let valid = 0;
  for (let n = 0; n < 2500; n++) {
    const m = mods[Math.floor(rnd() * mods.length)]!.slice();
    for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--)
      m[8 + Math.floor(rnd() * (m.length - 8))] = Math.floor(rnd() * 256);
    let out: Uint8Array;
    try {
      out = instrument(m).bytes;
    } catch (e) {
      expect(e).toBeInstanceOf(WasmFormatError); // never a TypeError or a RangeError from reading past the end
      continue;
    }
    if (WebAssembly.validate(m)) {
      valid++;
      expect(WebAssembly.validate(out)).toBe(true);
    }
  }
  expect(valid).toBeGreaterThan(100);
});
