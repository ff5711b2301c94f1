import { type Reader, readImportDesc, readSections, skipValType, vecReader, WasmFormatError } from "./wasm-binary.ts";

// Export signatures of a core module, read from the binary: the JS API does not expose parameter types,
// and inputs must be parsed per parameter type (i32/i64/f32/f64).

export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "funcref" | "externref" | "ref";
export interface Signature {
  params: ValType[];
  results: ValType[];
}

const VAL: Record<number, ValType> = {
  127: "i32",
  126: "i64",
  125: "f32",
  124: "f64",
  123: "v128",
  112: "funcref",
  111: "externref",
};

function readValType(r: Reader): ValType {
  const b = r.buf[r.pos]!;
  const known = VAL[b];
  if (known) {
    r.pos++;
    return known;
  }
  skipValType(r);
  return "ref";
}

export interface ModuleInfo {
  /** Function exports with their signatures. */
  functions: Map<string, Signature>;
  imports: { module: string; name: string }[];
}

const text = new TextDecoder();

export function inspect(bytes: Uint8Array): ModuleInfo {
  const sections = readSections(bytes);
  const types: Signature[] = [];
  const funcTypes: number[] = []; // type index of every function, imports first
  const imports: { module: string; name: string }[] = [];
  const functions = new Map<string, Signature>();
  for (const s of sections) {
    const [r, count] = (s.id >= 1 && s.id <= 3) || s.id === 7 ? vecReader(s.body) : [null, 0];
    if (!r) continue;
    for (let i = 0; i < count; i++) {
      if (s.id === 1) {
        const form = r.byte();
        if (form !== 0x60) throw new WasmFormatError("GC/rec types are not supported");
        const params = Array.from({ length: r.u32() }, () => readValType(r));
        const results = Array.from({ length: r.u32() }, () => readValType(r));
        types.push({ params, results });
      } else if (s.id === 2) {
        const module = text.decode(r.bytes(r.u32()));
        const name = text.decode(r.bytes(r.u32()));
        imports.push({ module, name });
        const desc = readImportDesc(r);
        if (desc.typeIdx !== undefined) funcTypes.push(desc.typeIdx);
      } else if (s.id === 3) funcTypes.push(r.u32());
      else {
        const name = text.decode(r.bytes(r.u32()));
        const kind = r.byte();
        const idx = r.u32();
        const sig = kind === 0x00 ? types[funcTypes[idx] ?? -1] : undefined;
        if (sig) functions.set(name, sig);
      }
    }
  }
  return { functions, imports };
}
