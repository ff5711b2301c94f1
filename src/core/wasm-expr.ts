import { Reader, skipValType, WasmFormatError, type Writer } from "./wasm-binary.ts";

// The instruction-stream half of the interrupt instrumentation (wasm-instrument.ts): copies code and constant
// expressions opcode by opcode, renumbering function indices and inserting the check after every loop header,
// or letting the instrumenter rewrite a counted loop whole (wasm-counted.ts).

function skipBlockType(r: Reader): void {
  const b = r.buf[r.pos];
  if (b === 0x63 || b === 0x64) skipValType(r);
  else r.skipLeb();
}

/** Copies one memarg (alignment with optional memory index, then offset). */
function copyMemarg(r: Reader): void {
  const align = r.u32();
  if (align & 0x40) r.u32();
  r.skipLeb();
}

/**
 * The label frames around the code being copied, and among them the loops the instrumenter inserted, which the
 * original code's branch depths do not count. Inserted loops sit only near the top of a function (counted loops
 * are tried within a few blocks, wasm-counted.ts), so renumbering a branch looks at those few, never at the whole
 * depth: a branch deep in thousands of blocks costs what a shallow one does.
 */
export class Frames {
  /** Frames open now. */
  depth = 0;
  /** The inserted loops' places, outermost first. */
  private inserted: number[] = [];

  push(inserted = false): void {
    if (inserted) this.inserted.push(this.depth);
    this.depth++;
  }

  pop(): void {
    this.depth--;
    if (this.inserted.at(-1) === this.depth) this.inserted.pop();
  }

  /** Whether any inserted loop is open: only then do branch depths change. */
  get shifted(): boolean {
    return this.inserted.length > 0;
  }

  /** A branch depth of the original code, counted again past the inserted loops it crosses. */
  label(label: number): number {
    let out = label;
    for (let k = this.inserted.length - 1; k >= 0 && this.inserted[k]! >= this.depth - 1 - out; k--) out++;
    return out;
  }
}

export interface Rewrite {
  remapFunc: (idx: number) => number;
  /** For `call` and `return_call` only, when it differs (a recursion's twin, which `ref.func` must never name). */
  remapCall?: (idx: number) => number;
  /** Bytes to insert after each loop header; empty for constant expressions. */
  check: Uint8Array;
  /** Told what the code holds: a function that calls nothing cannot recurse, one with no loop cannot spin. */
  seen?: { call: boolean; loop: boolean };
  /** At a `loop`: may copy the whole loop (reader past its `end`, before `endPos`) in a form of its own, returning true. */
  loop?: (r: Reader, w: Writer, frames: Frames, endPos: number) => boolean;
}

// SIMD sub-opcodes and what follows them.
function skipSimd(r: Reader, op: number): void {
  if (op <= 11 || op === 92 || op === 93) copyMemarg(r);
  else if (op === 12 || op === 13) r.bytes(16);
  else if (op >= 21 && op <= 34) r.byte();
  else if (op >= 84 && op <= 91) {
    copyMemarg(r);
    r.byte();
  }
}

/** Reads one instruction, its immediates included, and returns its opcode. */
export function readInstr(r: Reader): number {
  const start = r.pos;
  const op = r.byte();
  switch (op) {
    case 0x02: // block
    case 0x03: // loop
    case 0x04: // if
    case 0x06: // try
      skipBlockType(r);
      break;
    case 0x1f: {
      // try_table
      skipBlockType(r);
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const kind = r.byte();
        if (kind === 0x00 || kind === 0x01) r.u32();
        r.u32();
      }
      break;
    }
    case 0x0c:
    case 0x0d:
    case 0x07:
    case 0x08:
    case 0x09:
    case 0x10:
    case 0x12:
    case 0x14:
    case 0x15:
    case 0x18:
    case 0xd2:
    case 0xd5:
    case 0xd6:
    case 0x20:
    case 0x21:
    case 0x22:
    case 0x23:
    case 0x24:
    case 0x25:
    case 0x26:
    case 0x3f:
    case 0x40:
      r.u32();
      break;
    case 0x0e: {
      const n = r.u32();
      for (let i = 0; i <= n; i++) r.u32();
      break;
    }
    case 0x11: // call_indirect
    case 0x13: // return_call_indirect
      r.u32();
      r.u32();
      break;
    case 0x1c: {
      const n = r.u32();
      for (let i = 0; i < n; i++) skipValType(r);
      break;
    }
    case 0x41:
    case 0x42:
    case 0xd0:
      r.skipLeb();
      break;
    case 0x43:
      r.bytes(4);
      break;
    case 0x44:
      r.bytes(8);
      break;
    case 0xfc: {
      const sub = r.u32();
      if (sub === 8 || sub === 10 || sub === 12 || sub === 14) {
        r.u32();
        r.u32();
      } else if (sub === 9 || sub === 11 || sub === 13 || (sub >= 15 && sub <= 17)) r.u32();
      else if (sub > 17) throw new WasmFormatError(`unsupported instruction 0xfc ${sub}`);
      break;
    }
    case 0xfd:
      skipSimd(r, r.u32());
      break;
    case 0xfe: {
      const sub = r.u32();
      if (sub === 0x03) r.byte();
      else copyMemarg(r);
      break;
    }
    default:
      if (op >= 0x28 && op <= 0x3e) copyMemarg(r);
      else if (
        op === 0x00 ||
        op === 0x01 ||
        op === 0x05 ||
        op === 0x0a ||
        op === 0x0b ||
        op === 0x0f ||
        op === 0x19 ||
        op === 0x1a ||
        op === 0x1b ||
        op === 0xd1 ||
        op === 0xd3 ||
        op === 0xd4 ||
        (op >= 0x45 && op <= 0xc4)
      ) {
        // no immediates
      } else {
        throw new WasmFormatError(`unsupported instruction 0x${op.toString(16)} at byte ${start}`);
      }
  }
  return op;
}

/** The first immediate (a LEB128 index) of the instruction at `pos`. */
export function firstImmediate(buf: Uint8Array, pos: number): number {
  const r = new Reader(buf);
  r.pos = pos + 1;
  return r.u32();
}

/**
 * Copies an instruction sequence up to and including the `end` that closes it (or, with `stopAt`, up to that
 * position, reached outside any block of its own), remapping function indices and branch depths, and inserting
 * the interrupt check after every `loop`.
 */
export function rewriteExpr(
  r: Reader,
  w: Writer,
  rw: Rewrite,
  endPos: number,
  frames = new Frames(),
  stopAt = -1,
): void {
  const base = frames.depth;
  while (r.pos < endPos) {
    if (r.pos === stopAt && frames.depth === base) return;
    const start = r.pos;
    const op = r.buf[start];
    if (op === 0x03 && rw.loop?.(r, w, frames, endPos)) {
      if (rw.seen) rw.seen.loop = true;
      continue;
    }
    readInstr(r);
    switch (op) {
      case 0x02: // block
      case 0x04: // if
      case 0x06: // try
      case 0x1f: // try_table
        frames.push();
        break;
      case 0x03: // loop
        frames.push();
        w.raw(r.buf.subarray(start, r.pos));
        w.raw(rw.check);
        if (rw.seen) rw.seen.loop = true;
        continue;
      case 0x0b: // end
        if (frames.depth === base) {
          w.byte(op);
          if (stopAt >= 0) throw new WasmFormatError("a counted loop's body ended early");
          return;
        }
        frames.pop();
        break;
      case 0x10: // call
      case 0x12: // return_call
      case 0xd2: // ref.func
        if (op !== 0xd2 && rw.seen) rw.seen.call = true;
        w.byte(op!);
        w.u32((op === 0xd2 ? rw.remapFunc : (rw.remapCall ?? rw.remapFunc))(firstImmediate(r.buf, start)));
        continue;
      case 0x11: // call_indirect
      case 0x13: // return_call_indirect
      case 0x14: // call_ref
      case 0x15: // return_call_ref
        if (rw.seen) rw.seen.call = true;
        break;
      case 0x0c: // br
      case 0x0d: // br_if
      case 0xd5: // br_on_null
      case 0xd6: // br_on_non_null
        if (!frames.shifted) break;
        w.byte(op);
        w.u32(frames.label(firstImmediate(r.buf, start)));
        continue;
      case 0x0e: {
        // br_table
        if (!frames.shifted) break;
        const t = new Reader(r.buf);
        t.pos = start + 1;
        const n = t.u32();
        w.byte(op);
        w.u32(n);
        for (let i = 0; i <= n; i++) w.u32(frames.label(t.u32()));
        continue;
      }
    }
    w.raw(r.buf.subarray(start, r.pos));
  }
  throw new WasmFormatError("expression has no end");
}
