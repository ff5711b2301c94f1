import { type Reader, skipValType, WasmFormatError, type Writer } from "./wasm-binary.ts";

// The instruction-stream half of the interrupt instrumentation (wasm-instrument.ts): copies code and constant
// expressions opcode by opcode, renumbering function indices and inserting the check after every loop header.

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

export interface Rewrite {
  remapFunc: (idx: number) => number;
  /** Bytes to insert after each loop header; empty for constant expressions. */
  check: Uint8Array;
  /** Told what the code holds: a function that calls nothing cannot recurse, one with no loop cannot spin. */
  seen?: { call: boolean; loop: boolean };
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

/**
 * Copies an instruction sequence up to and including the `end` that closes it, remapping function indices and
 * inserting the interrupt check after every `loop`.
 */
export function rewriteExpr(r: Reader, w: Writer, rw: Rewrite, endPos: number): void {
  let depth = 0;
  while (r.pos < endPos) {
    const start = r.pos;
    const op = r.byte();
    switch (op) {
      case 0x02: // block
      case 0x04: // if
      case 0x06: // try
        skipBlockType(r);
        depth++;
        break;
      case 0x03: // loop
        skipBlockType(r);
        depth++;
        w.raw(r.buf.subarray(start, r.pos));
        w.raw(rw.check);
        if (rw.seen) rw.seen.loop = true;
        continue;
      case 0x1f: {
        // try_table
        skipBlockType(r);
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const kind = r.byte();
          if (kind === 0x00 || kind === 0x01) r.u32();
          r.u32();
        }
        depth++;
        break;
      }
      case 0x0b: // end
        if (depth === 0) {
          w.byte(op);
          return;
        }
        depth--;
        break;
      case 0x10: // call
      case 0x12: // return_call
      case 0xd2: {
        // ref.func
        if (op !== 0xd2 && rw.seen) rw.seen.call = true;
        const idx = r.u32();
        w.byte(op);
        w.u32(rw.remapFunc(idx));
        continue;
      }
      case 0x14: // call_ref
      case 0x15: // return_call_ref
        if (rw.seen) rw.seen.call = true;
        r.u32();
        break;
      case 0x0c:
      case 0x0d:
      case 0x07:
      case 0x08:
      case 0x09:
      case 0x18:
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
        if (rw.seen) rw.seen.call = true;
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
    w.raw(r.buf.subarray(start, r.pos));
  }
  throw new WasmFormatError("expression has no end");
}
