// Reading and writing the WebAssembly binary format: just what the instrumenter and the export inspector need.

export class WasmFormatError extends Error {}

export class Reader {
  pos = 0;
  /** Never past the buffer, whatever a (malformed) size said. */
  readonly end: number;
  constructor(
    readonly buf: Uint8Array,
    end = buf.length,
  ) {
    this.end = Math.min(end, buf.length);
  }
  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError("unexpected end of module");
    return this.buf[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new WasmFormatError("LEB128 too long");
    }
  }
  /** A signed LEB128 of at most 32 bits (an i32.const). */
  s32(): number {
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      b = this.byte();
      result |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80 && shift < 35);
    if (b & 0x80) throw new WasmFormatError("LEB128 too long");
    // Sign-extend from the last byte's sign bit when fewer than 32 bits were read.
    return shift < 32 && b & 0x40 ? result | (-1 << shift) : result;
  }
  /** Skips a signed or unsigned LEB128 of any width. */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    throw new WasmFormatError("LEB128 too long");
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.end) throw new WasmFormatError("unexpected end of module");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  name(): void {
    this.bytes(this.u32());
  }
}

/** A growable byte buffer: single bytes and LEBs go into a typed array, large copies are bulk `set`s. */
export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }
  u32(v: number): void {
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
  }
  i32(v: number): void {
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        this.byte(b);
        return;
      }
      this.byte(b | 0x80);
    }
  }
  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }
  get length(): number {
    return this.len;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// Value types that are longer than one byte: (ref null ht) and (ref ht) carry a heap type.
export function skipValType(r: Reader): void {
  const b = r.byte();
  if (b === 0x63 || b === 0x64) r.skipLeb();
}

export function skipLimits(r: Reader): void {
  const flags = r.byte();
  r.skipLeb();
  if (flags & 0x01) r.skipLeb();
}

export const IMPORT_FUNC = 0x00;
export const IMPORT_GLOBAL = 0x03;

/** Reads an import's kind and descriptor (after its two names); `typeIdx` is set for functions. */
export function readImportDesc(r: Reader): { kind: number; typeIdx?: number } {
  const kind = r.byte();
  if (kind === IMPORT_FUNC) return { kind, typeIdx: r.u32() };
  if (kind === 0x01) {
    skipValType(r);
    skipLimits(r);
  } else if (kind === 0x02) skipLimits(r);
  else if (kind === IMPORT_GLOBAL) {
    skipValType(r);
    r.byte();
  } else if (kind === 0x04) {
    r.byte();
    r.u32();
  } else throw new WasmFormatError(`unknown import kind ${kind}`);
  return { kind };
}

export interface Section {
  id: number;
  body: Uint8Array;
}

/** True when the bytes start with the `\0asm` magic and a version: a module or a component, not anything else. */
export function hasWasmMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}

/** A component (the component model's layer 1 binary), as opposed to a core module. */
export function isComponent(bytes: Uint8Array): boolean {
  return hasWasmMagic(bytes) && bytes[6] === 0x01 && bytes[7] === 0x00 && bytes[4] !== 0x01;
}

export function readSections(bytes: Uint8Array): Section[] {
  if (!hasWasmMagic(bytes)) {
    throw new WasmFormatError("not a WebAssembly module (missing \\0asm magic)");
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmFormatError("not a core module (version is not 1)");
  }
  const r = new Reader(bytes);
  r.pos = 8;
  const out: Section[] = [];
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    out.push({ id, body: r.bytes(size) });
  }
  return out;
}

/** Counts a section's entries and returns a reader positioned after the count. */
export function vecReader(body: Uint8Array): [Reader, number] {
  const r = new Reader(body);
  return [r, r.u32()];
}

export function lebLength(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}
