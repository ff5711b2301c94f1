import { describe, expect, test } from "bun:test";
import { readSections, skipValType, vecReader, Writer } from "../../../src/core/wasm-binary.ts";
import { matchCountedLoop } from "../../../src/core/wasm-counted.ts";
import { readInstr } from "../../../src/core/wasm-expr.ts";
import { instrument } from "../../../src/core/wasm-instrument.ts";
import { assemble } from "../../helpers.ts";

// Counted loops run in strips (src/core/wasm-counted.ts): the same results as the original for every start and
// limit, wrap-arounds included, and a host check at least every `checkEvery` steps however long the loop.

/** Whether the first loop of the module's first function is recognised as counted. */
function firstLoopCounted(raw: Uint8Array): boolean {
  const code = readSections(raw).find((x) => x.id === 10)!.body;
  const [r] = vecReader(code);
  const end = r.u32() + r.pos;
  for (let g = r.u32(); g > 0; g--) {
    r.u32();
    skipValType(r);
  }
  while (r.pos < end && code[r.pos] !== 0x03) readInstr(r);
  if (r.pos >= end) throw new Error("no loop");
  return matchCountedLoop(code, r.pos, end) !== undefined;
}

/** A host check that counts, and ends a loop gone wrong (about 10^8 steps) instead of hanging the suite. */
function runaway(count: () => number, every: number): () => void {
  const cap = Math.max(1_000, 1e8 / every);
  return () => {
    if (count() > cap) throw new Error(`runaway loop: over ${cap} checks`);
  };
}

/** A module of one function `f` (i32) -> i32, exported, with this code (locals and body). */
function moduleOf(code: Uint8Array): Uint8Array {
  const m = new Writer();
  m.raw(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
  const section = (id: number, content: Uint8Array) => {
    m.byte(id);
    m.u32(content.length);
    m.raw(content);
  };
  section(1, Uint8Array.of(1, 0x60, 1, 0x7f, 1, 0x7f));
  section(3, Uint8Array.of(1, 0));
  section(7, Uint8Array.of(1, 1, 0x66, 0x00, 0));
  const codeSec = new Writer();
  codeSec.u32(1);
  codeSec.u32(code.length);
  codeSec.raw(code);
  section(10, codeSec.finish());
  return m.finish();
}

type Cmp = "lt_u" | "lt_s" | "ne";
interface Form {
  cmp: Cmp;
  step: number;
  /** The limit: the second parameter, or this constant. */
  limit?: number;
  /** The increment inside the condition (`local.tee`), as compilers emit it. */
  tee: boolean;
}

/** f(i, n) -> [i after the loop, iterations, sum of i over the iterations] */
function loopWat(f: Form): string {
  const limit = f.limit === undefined ? "(local.get $n)" : `(i32.const ${f.limit | 0})`;
  const step = `(i32.add (local.get $i) (i32.const ${f.step}))`;
  const tail = f.tee
    ? `(br_if $l (i32.${f.cmp} (local.tee $i ${step}) ${limit}))`
    : `(local.set $i ${step}) (br_if $l (i32.${f.cmp} (local.get $i) ${limit}))`;
  return `(module (func (export "f") (param $i i32) (param $n i32) (result i32 i32 i32) (local $c i32) (local $s i32)
    (loop $l
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (local.set $s (i32.add (local.get $s) (local.get $i)))
      ${tail})
    (local.get $i) (local.get $c) (local.get $s)))`;
}

/** Iterations the original runs from i to n, or Infinity past `cap`. */
function iterations(f: Form, i: number, n: number, cap: number): number {
  const lim = f.limit === undefined ? n : f.limit;
  for (let c = 1; c <= cap; c++) {
    i = (i + f.step) | 0;
    const go = f.cmp === "ne" ? i !== (lim | 0) : f.cmp === "lt_s" ? i < (lim | 0) : i >>> 0 < lim >>> 0;
    if (!go) return c;
  }
  return Number.POSITIVE_INFINITY;
}

const EDGES = [
  0, 1, 2, 5, 6, 7, 8, 13, 100, 1000, 0x7ffffff0, 0x7ffffffe, 0x7fffffff, 0x80000000, 0x80000005, 0xfffffff0,
  0xfffffffe, 0xffffffff,
].map((v) => v | 0);

const FORMS: Form[] = [];
for (const cmp of ["lt_u", "lt_s", "ne"] as const)
  for (const tee of [false, true]) {
    FORMS.push({ cmp, step: 1, tee }, { cmp, step: 1, tee, limit: 1000 });
    if (cmp !== "ne") FORMS.push({ cmp, step: 4, tee, limit: 1000 }, { cmp, step: 3, tee, limit: 0x7ffffff0 });
  }

const name = (f: Form) =>
  `${f.cmp}, step ${f.step}, ${f.limit === undefined ? "local" : "constant"} limit${f.tee ? ", tee" : ""}`;

describe("counted loops", () => {
  for (const f of FORMS) {
    test(`${name(f)}: recognised, and the same results as the original from every start`, async () => {
      const raw = await assemble(loopWat(f));
      const original = new WebAssembly.Instance(new WebAssembly.Module(raw)).exports.f as (...a: number[]) => number[];
      for (const every of [1, 3, 7, 100_000]) {
        let checks = 0;
        const bytes = instrument(raw, every).bytes;
        const g = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
          propeller: { interrupt: runaway(() => ++checks, every) },
        }).exports.f as (...a: number[]) => number[];
        let compared = 0;
        const near = f.limit === undefined ? [] : [-10, -4, -3, -1, 0, 1].map((d) => (f.limit! + d) | 0);
        for (const i of [...EDGES, ...near])
          for (const n of [...EDGES, (i + 3) | 0, (i + 20) | 0, (i - 1) | 0]) {
            const steps = iterations(f, i, n, 20_000);
            if (steps === Number.POSITIVE_INFINITY) continue;
            checks = 0;
            expect(g(i, n)).toEqual(original(i, n));
            // Bounded: at least one check per `every` steps beyond the first `every`.
            expect(checks).toBeGreaterThanOrEqual(Math.ceil(steps / every) - 1);
            compared++;
          }
        expect(compared).toBeGreaterThan(40);
      }
      // The strip form is what ran: the loop matched.
      expect(firstLoopCounted(raw)).toBe(true);
    });
  }

  test("a loop that never ends by its count reaches the host check (4 billion steps, or around the ring)", async () => {
    for (const f of [
      { cmp: "lt_u", step: 1, tee: false },
      { cmp: "ne", step: 1, tee: true },
    ] as Form[]) {
      let checks = 0;
      const g = new WebAssembly.Instance(new WebAssembly.Module(instrument(await assemble(loopWat(f)), 1000).bytes), {
        propeller: {
          interrupt: () => {
            if (++checks > 20) throw new Error("stop");
          },
        },
      }).exports.f as (...a: number[]) => number[];
      expect(() => g(0, f.cmp === "ne" ? 0 : -1)).toThrow("stop");
    }
  });

  test("branches out of nested blocks keep their targets; nested counted loops share the counter", async () => {
    // Sum of i*j for i < n, j < i, leaving the whole thing when i*j reaches `stop`, through a br_table too.
    const wat = `(module (func (export "f") (param $n i32) (param $stop i32) (result i32) (local $i i32) (local $j i32) (local $s i32)
      (block $out
        (loop $outer
          (local.set $j (i32.const 0))
          (block $skip
            (br_if $skip (i32.eqz (local.get $i)))
            (loop $inner
              (block $a (block $b
                (br_table $a $b $out (i32.add (i32.ge_u (i32.mul (local.get $i) (local.get $j)) (local.get $stop))
                                              (i32.ge_u (i32.mul (local.get $i) (local.get $j)) (local.get $stop))))))
              (local.set $s (i32.add (local.get $s) (i32.mul (local.get $i) (local.get $j))))
              (br_if $out (i32.eq (local.get $s) (i32.const -1)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_if $inner (i32.lt_u (local.get $j) (local.get $i)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $outer (i32.lt_u (local.get $i) (local.get $n)))))
      (local.get $s)))`;
    const raw = await assemble(wat);
    const original = new WebAssembly.Instance(new WebAssembly.Module(raw)).exports.f as (...a: number[]) => number;
    for (const every of [1, 5, 64, 100_000]) {
      let checks = 0;
      const g = new WebAssembly.Instance(new WebAssembly.Module(instrument(raw, every).bytes), {
        propeller: { interrupt: runaway(() => ++checks, every) },
      }).exports.f as (...a: number[]) => number;
      for (const [n, stop] of [
        [0, 10],
        [1, 10],
        [30, 1_000_000],
        [30, 200],
        [300, 5000],
        [300, 10 ** 9],
      ]) {
        checks = 0;
        expect(g(n!, stop!)).toBe(original(n!, stop!));
        if (every === 5 && n === 300 && stop === 10 ** 9)
          expect(checks).toBeGreaterThanOrEqual((300 * 299) / 2 / 5 - 1);
      }
    }
  });

  test("loops that are not counted keep the check in every iteration", async () => {
    const notCounted = [
      // i written twice
      `(loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (local.set $i (i32.add (local.get $i) (i32.const 1)))
         (br_if $l (i32.lt_u (local.get $i) (local.get $n))))`,
      // the limit written in the loop
      `(loop $l (local.set $n (i32.add (local.get $n) (i32.const 0))) (local.set $i (i32.add (local.get $i) (i32.const 1)))
         (br_if $l (i32.lt_u (local.get $i) (local.get $n))))`,
      // a second way back to the loop
      `(loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.eq (local.get $i) (i32.const 3)))
         (br_if $l (i32.lt_u (local.get $i) (local.get $n))))`,
      // the increment only on one path
      `(loop $l (if (i32.const 1) (then (local.set $i (i32.add (local.get $i) (i32.const 1)))))
         (br_if $l (i32.lt_u (local.get $i) (local.get $n))))`,
      // a step of 2 against a local limit could wrap around
      `(loop $l (local.set $i (i32.add (local.get $i) (i32.const 2))) (br_if $l (i32.lt_u (local.get $i) (local.get $n))))`,
    ];
    for (const body of notCounted) {
      const wat = `(module (func (export "f") (param $i i32) (param $n i32) (result i32) ${body} (local.get $i)))`;
      const raw = await assemble(wat);
      expect(firstLoopCounted(raw)).toBe(false);
      let checks = 0;
      const g = new WebAssembly.Instance(new WebAssembly.Module(instrument(raw, 10).bytes), {
        propeller: { interrupt: () => void checks++ },
      }).exports.f as (...a: number[]) => number;
      const original = new WebAssembly.Instance(new WebAssembly.Module(raw)).exports.f as (...a: number[]) => number;
      expect(g(0, 1000)).toBe(original(0, 1000));
      expect(checks).toBeGreaterThanOrEqual(45);
    }
  });
});

test("10,000 nested loops are instrumented in linear time, and still compute what they did", () => {
  // Built byte by byte (wabt's parser takes minutes on such nesting): f(n) with local i, 10,000 loops each
  // ending `i = i + 1; br_if (i < n)`.
  const depth = 10_000;
  const code = new Writer();
  code.u32(1); // one group of locals
  code.u32(1);
  code.byte(0x7f);
  for (let d = 0; d < depth; d++) code.raw(Uint8Array.of(0x03, 0x40));
  const level = Uint8Array.of(0x20, 1, 0x41, 1, 0x6a, 0x22, 1, 0x20, 0, 0x49, 0x0d, 0, 0x0b);
  for (let d = 0; d < depth; d++) code.raw(level);
  code.raw(Uint8Array.of(0x20, 1, 0x0b));
  const body = code.finish();
  const raw = moduleOf(body);

  const t0 = performance.now();
  const bytes = instrument(raw).bytes;
  expect(performance.now() - t0).toBeLessThan(2000);
  const g = new WebAssembly.Instance(new WebAssembly.Module(bytes), { propeller: { interrupt: () => {} } }).exports
    .f as (n: number) => number;
  const original = new WebAssembly.Instance(new WebAssembly.Module(raw)).exports.f as (n: number) => number;
  expect(g(20_000)).toBe(original(20_000));
});

test("branches deep inside a counted loop are renumbered in time independent of the depth", () => {
  // f(n): a counted loop around 20,000 nested blocks, the innermost holding 100,000 `br_if` to the outermost.
  const depth = 20_000;
  const code = new Writer();
  code.u32(1);
  code.u32(1);
  code.byte(0x7f); // local i
  code.raw(Uint8Array.of(0x03, 0x40)); // loop
  for (let d = 0; d < depth; d++) code.raw(Uint8Array.of(0x02, 0x40));
  for (let b = 0; b < 100_000; b++) {
    code.raw(Uint8Array.of(0x41, 0x00, 0x0d)); // i32.const 0; br_if (to the outermost block)
    code.u32(depth - 1);
  }
  for (let d = 0; d < depth; d++) code.byte(0x0b);
  code.raw(Uint8Array.of(0x20, 1, 0x41, 1, 0x6a, 0x22, 1, 0x20, 0, 0x49, 0x0d, 0, 0x0b)); // i = i + 1; br_if (i < n)
  code.raw(Uint8Array.of(0x20, 1, 0x0b));
  const raw = moduleOf(code.finish());
  expect(firstLoopCounted(raw)).toBe(true);
  const t0 = performance.now();
  const bytes = instrument(raw).bytes;
  expect(performance.now() - t0).toBeLessThan(2000);
  const g = new WebAssembly.Instance(new WebAssembly.Module(bytes), { propeller: { interrupt: () => {} } }).exports
    .f as (n: number) => number;
  const original = new WebAssembly.Instance(new WebAssembly.Module(raw)).exports.f as (n: number) => number;
  expect(g(5)).toBe(original(5));
});
