import { Reader, skipValType, WasmFormatError, Writer } from "./wasm-binary.ts";
import { type CountedContext, rewriteCountedLoop } from "./wasm-counted.ts";
import { type Rewrite, rewriteExpr } from "./wasm-expr.ts";

// The code the interrupt check injects (wasm-instrument.ts says why), and one function's body rewritten with it.
// wasm-instrument.ts moves indices and re-emits sections; this room decides what a check costs inside a function.

/** The instruction sequences of the checks, for the module-wide counter global and the interrupt import. */
export interface CheckCode {
  /** At the entry of a function that makes calls (local `l` is its counter). */
  entryCheck(l: number): Uint8Array;
  /** Before a function's first loop: its counter starts full. */
  loopStart(l: number): Uint8Array;
  /** At a loop header. */
  loopCheck(l: number): Uint8Array;
  /** A spent counter calls the host and starts again full; counted loops use it alone. */
  refill(l: number): Uint8Array;
}

export function checkCode(counter: number, interruptFunc: number, checkEvery: number): CheckCode {
  /** A spent counter (local `l` at 0) calls the host and starts again full; counted loops use it alone. */
  const refill = (l: number) => {
    const c = new Writer();
    c.byte(0x20); // local.get
    c.u32(l);
    c.byte(0x45); // i32.eqz
    c.byte(0x04); // if
    c.byte(0x40);
    c.byte(0x10); // call
    c.u32(interruptFunc);
    c.byte(0x41); // i32.const
    c.i32(checkEvery);
    c.byte(0x21); // local.set
    c.u32(l);
    c.byte(0x0b); // end
    return c.finish();
  };
  return {
    /**
     * Counts the module-wide counter down through the function's own local `l` (one global read and one write),
     * and calls the host when it goes below 0. Measured on JavaScriptCore (scripts/bench/wasm.ts): recursive fib
     * ~1.35× where reading the global twice cost ~1.5×.
     */
    entryCheck(l) {
      const c = new Writer();
      c.byte(0x23); // global.get
      c.u32(counter);
      c.byte(0x41); // i32.const
      c.i32(1);
      c.byte(0x6b); // i32.sub
      c.byte(0x22); // local.tee
      c.u32(l);
      c.byte(0x24); // global.set
      c.u32(counter);
      c.byte(0x20); // local.get
      c.u32(l);
      c.byte(0x41);
      c.i32(0);
      c.byte(0x48); // i32.lt_s
      c.byte(0x04); // if
      c.byte(0x40);
      c.byte(0x10); // call
      c.u32(interruptFunc);
      c.byte(0x41);
      c.i32(checkEvery);
      c.byte(0x24); // global.set
      c.u32(counter);
      c.byte(0x0b); // end
      return c.finish();
    },
    /** A short loop in a function called often must not call the host each time. */
    loopStart(l) {
      const c = new Writer();
      c.byte(0x41); // i32.const
      c.i32(checkEvery);
      c.byte(0x21); // local.set
      c.u32(l);
      return c.finish();
    },
    /**
     * Counts the function's own counter (local `l`, CHECK_EVERY at entry) down, and calls the host when it is 0.
     * Measured on JavaScriptCore: this form keeps a tight loop at ~1.3× where a masked count-up (`(c + 1) & mask`)
     * cost 4.7× and the module-wide global 3.4× (scripts/bench/wasm.ts). Starting at 0 instead called the host at
     * the first iteration of every call: a helper with a short loop called from a loop ran 3× slower with a host
     * check that does nothing, and far slower with the real one.
     */
    loopCheck(l) {
      const c = new Writer();
      c.raw(refill(l));
      c.byte(0x20); // local.get
      c.u32(l);
      c.byte(0x41); // i32.const
      c.i32(1);
      c.byte(0x6b); // i32.sub
      c.byte(0x21); // local.set
      c.u32(l);
      return c.finish();
    },
    refill,
  };
}

/** What rewriting a function needs to know of its module. */
export interface FunctionContext {
  checks: CheckCode;
  /** Parameter count of every type. */
  params: number[];
  /** The type of every defined function. */
  funcTypes: number[];
  remapFunc: (idx: number) => number;
}

/**
 * One function's code with the checks in (`entry`: the entry check too, where it makes calls), read from the code
 * section at `offset` (its size).
 */
export function rewriteFunction(
  fn: FunctionContext,
  section: Uint8Array,
  offset: number,
  i: number,
  remapCall: (idx: number) => number,
  entry: boolean,
): Uint8Array {
  const { checks } = fn;
  const r = new Reader(section);
  r.pos = offset;
  const size = r.u32();
  const end = r.pos + size;
  const groups = r.u32();
  const groupsStart = r.pos;
  let locals = fn.params[fn.funcTypes[i] ?? -1] ?? 0;
  for (let g = 0; g < groups; g++) {
    locals += r.u32();
    skipValType(r);
  }
  const declared = r.buf.subarray(groupsStart, r.pos);
  // The counter is a new last local (i32): its index is every local before it.
  const seen = { call: false, loop: false };
  const code = new Writer();
  // Counted loops run in strips (wasm-counted.ts), each with two locals of its own after the counter.
  let pairs = 0;
  const rw: Rewrite = { remapFunc: fn.remapFunc, remapCall, check: checks.loopCheck(locals), seen };
  const counted: CountedContext = {
    rw,
    counter: locals,
    locals: () => {
      const s = locals + 1 + 2 * pairs++;
      return [s, s + 1];
    },
    refill: checks.refill(locals),
  };
  rw.loop = (rr, ww, frames, endPos) => rewriteCountedLoop(rr, ww, frames, endPos, counted);
  rewriteExpr(r, code, rw, end);
  if (r.pos !== end) throw new WasmFormatError(`function ${i} has bytes after its end`);
  const body = new Writer();
  const checked = seen.loop || seen.call;
  body.u32(groups + (checked ? 1 : 0) + (pairs ? 1 : 0));
  body.raw(declared);
  if (checked) body.raw(Uint8Array.of(0x01, 0x7f));
  if (pairs) {
    body.u32(2 * pairs);
    body.byte(0x7f);
  }
  if (seen.call && entry) body.raw(checks.entryCheck(locals)); // function entry: bounds unbounded recursion
  if (seen.loop) body.raw(checks.loopStart(locals));
  body.raw(code.finish());
  return body.finish();
}
