import { Reader, WasmFormatError, Writer } from "./wasm-binary.ts";
import { type Frames, firstImmediate, type Rewrite, readInstr, rewriteExpr } from "./wasm-expr.ts";

// Counted loops without a check in every iteration (part of the interrupt instrumentation, wasm-instrument.ts).
//
// A loop `do { …; i += c } while (i < n)` (or `i != n`, or the increment inside the condition, as compilers emit
// it) where nothing else writes i or n and nothing else branches back to the loop, is run in strips: before each
// strip the bound becomes min(n, i + k), k being the function's check counter, so the strip's own comparison
// (`i < bound` instead of `i < n`, same cost) ends it within k steps of i; between strips the counter is charged
// with the distance i went and the host is called when it is spent. An iteration then costs what it costs in
// the original, where the count-down check cost a decrement and a branch (measured: a tight loop 1.25×, a memory
// walk 1.7× of the original). The original's condition decides, after every strip, whether the loop goes on.
//
// Why it stays exact: a strip only continues while i < bound ≤ n, where the original continues too; it stops
// when i ≥ bound, and the original condition is then asked. Why it stays bounded: a strip goes at most k past
// its start (for a step over 1 it may go a step past; the counter is clamped at 0 then), and when i + k or
// i + c would wrap around, the strip's bound leaves it at a single iteration.

/** Loops nested deeper than this in blocks keep the plain check. */
const MAX_DEPTH = 16;
const I32_CONST = 0x41;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_ADD = 0x6a;
const BR_IF = 0x0d;
const CMP = { 71: "ne", 72: "lt_s", 73: "lt_u" } as const;
type Cmp = (typeof CMP)[keyof typeof CMP];

/** The loop limit: a local nothing in the loop writes, or a constant. */
type Limit = { local: number } | { value: number };

export interface CountedLoop {
  /** Just after the loop's `end`. */
  end: number;
  /** The body to copy as it is: from after the loop header to the condition. */
  body: [number, number];
  /** The condition's instructions up to the limit, copied as they are (`local.get i`, or the increment and tee). */
  condHead: [number, number];
  i: number;
  limit: Limit;
  cmp: Cmp;
  step: number;
  /** The body holds a loop of its own (which counts the same counter down). */
  nested: boolean;
}

interface Instr {
  start: number;
  end: number;
  op: number;
}

const imm = (buf: Uint8Array, ins: Instr) => firstImmediate(buf, ins.start);
function constOf(buf: Uint8Array, ins: Instr | undefined): number | undefined {
  if (ins?.op !== I32_CONST) return undefined;
  const r = new Reader(buf);
  r.pos = ins.start + 1;
  return r.s32();
}

/** Recognises a counted loop at `pos` (a `loop` opcode), or returns undefined. */
export function matchCountedLoop(buf: Uint8Array, pos: number, limitPos: number): CountedLoop | undefined {
  const r = new Reader(buf, limitPos);
  r.pos = pos + 1;
  if (r.byte() !== 0x40) return undefined; // a loop with parameters or results: not handled
  const bodyStart = r.pos;
  const top: Instr[] = [];
  const writes = new Map<number, number>();
  const backBranches: number[] = [];
  let depth = 0;
  let nested = false;
  let end = -1;
  while (end < 0) {
    const start = r.pos;
    const op = readInstr(r);
    if (op === 0x0b) {
      if (depth === 0) end = r.pos;
      else depth--;
      continue;
    }
    if (depth === 0) top.push({ start, end: r.pos, op });
    if (op === 0x02 || op === 0x03 || op === 0x04) {
      if (op === 0x03) nested = true;
      depth++;
    } else if (op === 0x06 || op === 0x1f || op === 0x18 || op === 0x09) {
      return undefined; // exception handling carries labels of its own: copied by the plain form instead
    } else if (op === LOCAL_SET || op === LOCAL_TEE) {
      const l = firstImmediate(buf, start);
      writes.set(l, (writes.get(l) ?? 0) + 1);
    } else if (op === 0x0c || op === BR_IF || op === 0xd5 || op === 0xd6) {
      if (firstImmediate(buf, start) === depth) backBranches.push(start);
    } else if (op === 0x0e) {
      const t = new Reader(buf, limitPos);
      t.pos = start + 1;
      const n = t.u32();
      for (let k = 0; k <= n; k++) if (t.u32() === depth) return undefined;
    }
  }
  // The only branch back to the loop: the `br_if 0` that ends it.
  const last = top.at(-1);
  if (!last || last.op !== BR_IF || imm(buf, last) !== 0 || backBranches.length !== 1) return undefined;
  const cmpIns = top.at(-2);
  const cmp = cmpIns ? CMP[cmpIns.op as keyof typeof CMP] : undefined;
  const limitIns = top.at(-3);
  if (!cmp || !limitIns) return undefined;
  const limitConst = constOf(buf, limitIns);
  const limit: Limit | undefined =
    limitIns.op === LOCAL_GET
      ? { local: imm(buf, limitIns) }
      : limitConst !== undefined
        ? { value: limitConst }
        : undefined;
  if (!limit) return undefined;

  // Form A: `local.get i` before the limit, the increment a statement of the body's own.
  // Form B: `local.get i; i32.const c; i32.add; local.tee i` before the limit.
  let i: number;
  let step: number | undefined;
  let condStart: number;
  let bodyEnd: number;
  const t = top.length;
  const tee = top[t - 4];
  if (tee?.op === LOCAL_TEE) {
    i = imm(buf, tee);
    const [get, c, add] = [top[t - 7], top[t - 6], top[t - 5]];
    if (get?.op !== LOCAL_GET || imm(buf, get) !== i || add?.op !== I32_ADD) return undefined;
    step = constOf(buf, c);
    condStart = get.start;
    bodyEnd = get.start;
  } else {
    const get = top[t - 4];
    if (get?.op !== LOCAL_GET) return undefined;
    i = imm(buf, get);
    condStart = get.start;
    bodyEnd = get.start;
    // The increment: `local.get i; i32.const c; i32.add; local.set i`, run once in every iteration.
    for (let k = 0; k + 3 < t - 4; k++) {
      const [g, c, a, s] = [top[k]!, top[k + 1]!, top[k + 2]!, top[k + 3]!];
      if (g.op === LOCAL_GET && imm(buf, g) === i && a.op === I32_ADD && s.op === LOCAL_SET && imm(buf, s) === i) {
        step = constOf(buf, c);
        break;
      }
    }
  }
  if (step === undefined || step < 1 || step > 0xffff || writes.get(i) !== 1) return undefined;
  if ("local" in limit && (limit.local === i || writes.has(limit.local))) return undefined;
  // A step over 1 must not carry i past the limit and around: only against a constant far enough from the top.
  if (step > 1) {
    if (cmp === "ne" || !("value" in limit)) return undefined;
    const top32 = cmp === "lt_u" ? 2 ** 32 : 2 ** 31;
    const n = cmp === "lt_u" ? limit.value >>> 0 : limit.value;
    if (n > top32 - step) return undefined;
  }
  return {
    end,
    body: [bodyStart, bodyEnd],
    condHead: [condStart, limitIns.start],
    i,
    limit,
    cmp,
    step,
    nested,
  };
}

/** What the rewrite of one counted loop needs from the function around it. */
export interface CountedContext {
  rw: Rewrite;
  /** The function's check counter (a local). */
  counter: number;
  /** Two fresh i32 locals for this loop: the strip's start and its bound. */
  locals(): [number, number];
  interruptFunc: number;
  checkEvery: number;
}

/** Rewrites the counted loop at the reader (a `loop` opcode) into strips and returns true, or returns false. */
export function rewriteCountedLoop(r: Reader, w: Writer, frames: Frames, endPos: number, ctx: CountedContext): boolean {
  // Each try scans the loop to its end: only loops within MAX_DEPTH blocks are tried, so a module of deeply
  // nested loops (hostile or not) costs at most that many scans of each byte, not one per enclosing loop.
  if (frames.length > MAX_DEPTH) return false;
  const m = matchCountedLoop(r.buf, r.pos, endPos);
  if (!m) return false;
  const [s, b] = ctx.locals();
  const k = ctx.counter;
  let e = new Writer();
  const get = (l: number) => {
    e.byte(LOCAL_GET);
    e.u32(l);
  };
  const set = (l: number) => {
    e.byte(LOCAL_SET);
    e.u32(l);
  };
  const limit = () => {
    if ("local" in m.limit) get(m.limit.local);
    else {
      e.byte(I32_CONST);
      e.i32(m.limit.value);
    }
  };
  const cmpOp = m.cmp === "ne" ? 0x47 : m.cmp === "lt_s" ? 0x48 : 0x49;

  e.raw(Uint8Array.of(0x03, 0x40)); // loop: one strip per iteration
  // A spent counter: call the host, and start again full.
  get(k);
  e.raw(Uint8Array.of(0x45, 0x04, 0x40, 0x10)); // i32.eqz; if; call
  e.u32(ctx.interruptFunc);
  e.byte(I32_CONST);
  e.i32(ctx.checkEvery);
  set(k);
  e.byte(0x0b);
  // s = i; b = s + k, then the strip's bound.
  get(m.i);
  e.byte(LOCAL_TEE);
  e.u32(s);
  get(k);
  e.byte(I32_ADD);
  if (m.cmp === "ne") {
    // b = (n - s - 1 <u k) ? n : s + k: the limit when it is 1 to k steps on; s + k otherwise (i meets it exactly).
    set(b);
    limit();
    get(b);
    limit();
    get(s);
    e.byte(0x6b); // i32.sub
    e.byte(I32_CONST);
    e.i32(1);
    e.byte(0x6b);
    get(k);
    e.byte(0x49); // i32.lt_u
  } else {
    // b = min(s + k, n), in the comparison's own order.
    e.byte(LOCAL_TEE);
    e.u32(b);
    limit();
    get(b);
    limit();
    e.byte(cmpOp);
  }
  e.byte(0x1b); // select
  set(b);
  if (m.step > 1) {
    // From at or past the limit, a single iteration: the step could carry i around and back below it.
    get(b);
    e.byte(I32_CONST);
    e.i32(m.cmp === "lt_s" ? -(2 ** 31) : 0);
    get(s);
    limit();
    e.byte(cmpOp);
    e.byte(0x1b);
    set(b);
  }
  w.raw(e.finish());

  // The original loop, its condition against the strip's bound.
  frames.push(true);
  w.raw(Uint8Array.of(0x03, 0x40));
  frames.push(false);
  const body = new Reader(r.buf, endPos);
  body.pos = m.body[0];
  rewriteExpr(body, w, ctx.rw, m.end, frames, m.body[1]);
  if (body.pos !== m.body[1]) throw new WasmFormatError("counted loop body out of step");
  w.raw(r.buf.subarray(m.condHead[0], m.condHead[1]));
  w.raw(Uint8Array.of(LOCAL_GET));
  w.u32(b);
  w.raw(Uint8Array.of(cmpOp, BR_IF, 0x00, 0x0b));
  frames.pop();

  // Charge the distance, then ask the original condition.
  e = new Writer();
  get(k);
  get(m.i);
  get(s);
  e.raw(Uint8Array.of(0x6b, 0x6b)); // k - (i - s)
  if (m.step > 1 || m.nested) {
    // max(…, 0): a step over 1 may overshoot, and an inner loop may have spent the counter meanwhile.
    e.byte(LOCAL_TEE);
    e.u32(k);
    e.byte(I32_CONST);
    e.i32(0);
    get(k);
    e.byte(I32_CONST);
    e.i32(0);
    e.byte(0x4a); // i32.gt_s
    e.byte(0x1b);
  }
  set(k);
  get(m.i);
  limit();
  e.raw(Uint8Array.of(cmpOp, BR_IF, 0x00, 0x0b));
  w.raw(e.finish());
  frames.pop();
  r.pos = m.end;
  return true;
}
