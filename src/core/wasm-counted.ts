import { Reader, type Writer } from "./wasm-binary.ts";
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
const I32_NE = 0x47;
const I32_LT_S = 0x48;
const I32_LT_U = 0x49;

/** The loop limit: a local nothing in the loop writes, or a constant. */
type Limit = { local: number } | { value: number };

export interface CountedLoop {
  /** After the loop header: the body, copied as it is, runs from here to `cond`. */
  body: number;
  /** The condition's instructions before the limit, copied as they are (`local.get i`, or the increment and tee). */
  cond: number;
  /** Where the limit is read, in the condition: the strip's bound is read there instead. */
  limitAt: number;
  /** Just after the loop's `end`. */
  end: number;
  i: number;
  limit: Limit;
  /** The comparison's opcode: i32.ne, i32.lt_s or i32.lt_u. */
  cmp: number;
  step: number;
  /** The body holds a loop of its own (which counts the same counter down). */
  nested: boolean;
}

interface Instr {
  start: number;
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
    if (depth === 0) top.push({ start, op });
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
  const cmp = top.at(-2)?.op;
  const limitIns = top.at(-3);
  if ((cmp !== I32_NE && cmp !== I32_LT_S && cmp !== I32_LT_U) || !limitIns) return undefined;
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
  let cond: number;
  const t = top.length;
  const tee = top[t - 4];
  if (tee?.op === LOCAL_TEE) {
    i = imm(buf, tee);
    const [get, c, add] = [top[t - 7], top[t - 6], top[t - 5]];
    if (get?.op !== LOCAL_GET || imm(buf, get) !== i || add?.op !== I32_ADD) return undefined;
    step = constOf(buf, c);
    cond = get.start;
  } else {
    const get = top[t - 4];
    if (get?.op !== LOCAL_GET) return undefined;
    i = imm(buf, get);
    cond = get.start;
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
    if (cmp === I32_NE || !("value" in limit)) return undefined;
    const top32 = cmp === I32_LT_U ? 2 ** 32 : 2 ** 31;
    const n = cmp === I32_LT_U ? limit.value >>> 0 : limit.value;
    if (n > top32 - step) return undefined;
  }
  return { body: bodyStart, cond, limitAt: limitIns.start, end, i, limit, cmp, step, nested };
}

/** What the rewrite of one counted loop needs from the function around it. */
export interface CountedContext {
  rw: Rewrite;
  /** The function's check counter (a local). */
  counter: number;
  /** Two fresh i32 locals for this loop: the strip's start and its bound. */
  locals(): [number, number];
  /** A spent counter (0) calls the host and starts again full: the first half of every loop check. */
  refill: Uint8Array;
}

/** Rewrites the counted loop at the reader (a `loop` opcode) into strips and returns true, or returns false. */
export function rewriteCountedLoop(r: Reader, w: Writer, frames: Frames, endPos: number, ctx: CountedContext): boolean {
  // Each try scans the loop to its end: only loops within MAX_DEPTH blocks are tried, so a module of deeply
  // nested loops (hostile or not) costs at most that many scans of each byte, not one per enclosing loop.
  if (frames.depth > MAX_DEPTH) return false;
  const m = matchCountedLoop(r.buf, r.pos, endPos);
  if (!m) return false;
  const [s, b] = ctx.locals();
  const k = ctx.counter;
  const op = (...bytes: number[]) => w.raw(Uint8Array.of(...bytes));
  const local = (code: number, l: number) => {
    w.byte(code);
    w.u32(l);
  };
  const int = (v: number) => {
    w.byte(I32_CONST);
    w.i32(v);
  };
  const limit = () => ("local" in m.limit ? local(LOCAL_GET, m.limit.local) : int(m.limit.value));

  op(0x03, 0x40); // loop: one strip per iteration
  w.raw(ctx.refill);
  // s = i; b = s + k, then the strip's bound.
  local(LOCAL_GET, m.i);
  local(LOCAL_TEE, s);
  local(LOCAL_GET, k);
  op(I32_ADD);
  if (m.cmp === I32_NE) {
    // b = (n - s - 1 <u k) ? n : s + k: the limit when it is 1 to k steps on; s + k otherwise (i meets it exactly).
    local(LOCAL_SET, b);
    limit();
    local(LOCAL_GET, b);
    limit();
    local(LOCAL_GET, s);
    op(0x6b); // i32.sub
    int(1);
    op(0x6b);
    local(LOCAL_GET, k);
    op(I32_LT_U);
  } else {
    // b = min(s + k, n), in the comparison's own order.
    local(LOCAL_TEE, b);
    limit();
    local(LOCAL_GET, b);
    limit();
    op(m.cmp);
  }
  op(0x1b); // select
  local(LOCAL_SET, b);
  if (m.step > 1) {
    // From at or past the limit, a single iteration: the step could carry i around and back below it.
    local(LOCAL_GET, b);
    int(m.cmp === I32_LT_S ? -(2 ** 31) : 0);
    local(LOCAL_GET, s);
    limit();
    op(m.cmp, 0x1b);
    local(LOCAL_SET, b);
  }

  // The original loop, its condition against the strip's bound.
  frames.push(true);
  op(0x03, 0x40);
  frames.push();
  const body = new Reader(r.buf, endPos);
  body.pos = m.body;
  rewriteExpr(body, w, ctx.rw, m.end, frames, m.cond);
  w.raw(r.buf.subarray(m.cond, m.limitAt));
  local(LOCAL_GET, b);
  op(m.cmp, BR_IF, 0x00, 0x0b);
  frames.pop();

  // Charge the distance, then ask the original condition.
  local(LOCAL_GET, k);
  local(LOCAL_GET, m.i);
  local(LOCAL_GET, s);
  op(0x6b, 0x6b); // k - (i - s)
  if (m.step > 1 || m.nested) {
    // max(…, 0): a step over 1 may overshoot, and an inner loop may have spent the counter meanwhile.
    local(LOCAL_TEE, k);
    int(0);
    local(LOCAL_GET, k);
    int(0);
    op(0x4a, 0x1b); // i32.gt_s; select
  }
  local(LOCAL_SET, k);
  local(LOCAL_GET, m.i);
  limit();
  op(m.cmp, BR_IF, 0x00, 0x0b);
  frames.pop();
  r.pos = m.end;
  return true;
}
