import { describe, expect, test } from "bun:test";
import { instrument } from "../../../src/core/wasm-instrument.ts";
import { chooseTwins, recursiveComponents } from "../../../src/core/wasm-recursion.ts";
import { assemble } from "../../helpers.ts";

// Recursive functions get an unchecked twin (src/core/wasm-recursion.ts): the same results, every second call of
// a recursion still checks, and a recursion without end still reaches the host.

describe("call graph", () => {
  test("cycles are found; a chain or a tree of calls is none", () => {
    // 0 calls itself; 1 -> 2 -> 3 -> 1; 4 -> 5 (no cycle); 6 -> 0
    const comp = recursiveComponents([[0], [2], [3], [1], [5], [], [0]]);
    expect(comp[0]).not.toBe(-1);
    expect(new Set([comp[1], comp[2], comp[3]]).size).toBe(1);
    expect(comp[1]).not.toBe(-1);
    expect(comp[1]).not.toBe(comp[0]);
    expect([comp[4], comp[5], comp[6]]).toEqual([-1, -1, -1]);
  });

  test("a call chain of 200,000 functions does not overflow the analysis", () => {
    const n = 200_000;
    const calls = Array.from({ length: n }, (_, i) => (i + 1 < n ? [i + 1] : [0]));
    const comp = recursiveComponents(calls);
    expect(comp.every((c) => c === comp[0] && c !== -1)).toBe(true);
  });

  test("twins are bounded in size, each and in all", () => {
    const comp = Int32Array.from([0, 0, 1, -1, 2]);
    expect([...chooseTwins(comp, [100, 20_000, 100, 100, 100], 16 << 10, 150).keys()]).toEqual([0]);
    expect([...chooseTwins(comp, [100, 100, 100, 100, 100]).keys()]).toEqual([0, 1, 2, 4]);
  });
});

const FIB = `(module
  (func $fib (export "fib") (param i64) (result i64)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2)) (then (local.get 0))
      (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1)))
                     (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
  ;; the same through two functions
  (func $f (export "f") (param i64) (result i64)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2)) (then (local.get 0))
      (else (i64.add (call $g (i64.sub (local.get 0) (i64.const 1))) (call $g (i64.sub (local.get 0) (i64.const 2)))))))
  (func $g (param i64) (result i64)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2)) (then (local.get 0))
      (else (i64.add (call $f (i64.sub (local.get 0) (i64.const 1))) (call $f (i64.sub (local.get 0) (i64.const 2))))))))`;

describe("recursion with twins", () => {
  test("a recursive function that takes a reference to itself still names itself, not its twin", async () => {
    // ref.func may only name declared functions: the twin is not one, so a reference to it would not validate.
    const raw = await assemble(`(module (type $t (func (param i32) (result i32)))
      (table 1 funcref) (elem declare func $down)
      (func $down (export "down") (type $t)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 7))
          (else (table.set (i32.const 0) (ref.func $down))
                (call $down (i32.sub (local.get 0) (i32.const 1)))))))`);
    const e = new WebAssembly.Instance(new WebAssembly.Module(instrument(raw).bytes), {
      propeller: { interrupt: () => {} },
    }).exports as Record<string, (n: number) => number>;
    expect(e.down!(10)).toBe(7);
  });

  test("the same results; about every second call checks; a recursion without end still reaches the host", async () => {
    const raw = await assemble(FIB);
    let checks = 0;
    let cap = Number.POSITIVE_INFINITY;
    const e = new WebAssembly.Instance(new WebAssembly.Module(instrument(raw, 1).bytes), {
      propeller: {
        interrupt: () => {
          if (++checks > cap) throw new Error("stop");
        },
      },
    }).exports as Record<string, (n: bigint) => bigint>;
    const calls = 2 * 75_025 - 1; // calls made by fib(25)
    for (const name of ["fib", "f"]) {
      checks = 0;
      expect(e[name]!(25n)).toBe(75_025n);
      // Checked at every call before the twins; now at the calls into the checked function of each pair.
      expect(checks).toBeGreaterThan(calls * 0.3);
      expect(checks).toBeLessThan(calls * 0.7);
    }
    cap = 1_000;
    for (const name of ["fib", "f"]) {
      checks = 0;
      expect(() => e[name]!(90n)).toThrow("stop"); // ~10^18 calls: only the checks end it
    }
  });
});
