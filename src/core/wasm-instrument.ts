import {
  IMPORT_FUNC,
  IMPORT_GLOBAL,
  lebLength,
  Reader,
  readImportDesc,
  readSections,
  skipValType,
  vecReader,
  WasmFormatError,
  Writer,
} from "./wasm-binary.ts";
import { capMemories, capTables } from "./wasm-caps.ts";

export { PAGE } from "./wasm-caps.ts";

import { checkCode, type FunctionContext, rewriteFunction } from "./wasm-checks.ts";
import { type Rewrite, rewriteExpr } from "./wasm-expr.ts";
import { chooseTwins, mapCode, recursiveComponents } from "./wasm-recursion.ts";

export { WasmFormatError };

// Injects an interrupt check into a core Wasm module, like wasmtime's epoch interruption.
//
// Why: Bun's Worker.terminate() cannot stop a worker spinning in a pure-Wasm loop (docs/ARCHITECTURE.md, "Measured
// traps").
// A loop that calls a host import now and then can be stopped, so code that could run without end calls the
// import `propeller.interrupt` now and then, which checks the stop flag and the deadline and throws to unwind the
// guest. Only two things run without end: a loop, and recursion. Every loop header counts a local of its own
// function (a register, not memory) down and calls the import when it reaches zero, every CHECK_EVERY iterations;
// every function that makes calls (a leaf cannot recurse) counts down a module-wide global at entry and calls the
// import when it reaches zero. Straight-line leaf functions get nothing. A counted loop is run in strips instead,
// with no added work in its iterations (wasm-counted.ts), and a recursion checks at every second call through
// unchecked twins of its functions (wasm-recursion.ts). Pure function: bytes in, bytes out.

export const INTERRUPT_MODULE = "propeller";
export const INTERRUPT_NAME = "interrupt";
/** Loop iterations or calls between two host checks: reached in well under a millisecond. */
export const CHECK_EVERY = 100_000;

const SECTION_ORDER: Record<number, number> = {
  1: 1,
  2: 2,
  3: 3,
  4: 4,
  5: 5,
  13: 6,
  6: 7,
  7: 8,
  8: 9,
  9: 10,
  12: 11,
  10: 12,
  11: 13,
};

function rewriteConstExprs(r: Reader, w: Writer, rw: Rewrite, n: number): void {
  for (let i = 0; i < n; i++) rewriteExpr(r, w, rw, r.end);
}

function rewriteElements(body: Uint8Array, rw: Rewrite): Uint8Array {
  const [r, count] = vecReader(body);
  const w = new Writer();
  w.u32(count);
  const noCheck = { ...rw, check: new Uint8Array() };
  for (let i = 0; i < count; i++) {
    const flags = r.u32();
    w.u32(flags);
    const copyFrom = (start: number) => w.raw(r.buf.subarray(start, r.pos));
    if (flags === 2 || flags === 6) {
      const s = r.pos;
      r.u32();
      copyFrom(s);
    }
    if ((flags & 0x01) === 0) rewriteExpr(r, w, noCheck, r.end); // active: offset expression
    if (flags >= 1 && flags <= 3)
      w.byte(r.byte()); // elemkind
    else if (flags >= 5) {
      const s = r.pos;
      skipValType(r); // reftype
      copyFrom(s);
    }
    const n = r.u32();
    w.u32(n);
    if (flags & 0x04) rewriteConstExprs(r, w, noCheck, n);
    else for (let j = 0; j < n; j++) w.u32(rw.remapFunc(r.u32()));
  }
  return w.finish();
}

export interface Instrumented {
  bytes: Uint8Array;
  /** Index of the interrupt import among functions; informational. */
  interruptFunc: number;
}

/**
 * Returns the module with the interrupt check injected, its tables capped (capTables), and its memories capped at
 * `maxPages` when given.
 * Throws WasmFormatError for malformed or unsupported input.
 */
export function instrument(input: Uint8Array, checkEvery = CHECK_EVERY, maxPages?: number): Instrumented {
  const sections = readSections(input);
  const byId = (id: number) => sections.find((s) => s.id === id);

  // Type index of the new () -> () signature: appended, so no existing index moves.
  const typeSec = byId(1);
  const params = paramCounts(typeSec?.body);
  const [typeR, typeCount] = typeSec ? vecReader(typeSec.body) : [new Reader(new Uint8Array()), 0];
  const newType = typeCount;
  const typeW = new Writer();
  typeW.u32(typeCount + 1);
  if (typeSec) typeW.raw(typeSec.body.subarray(typeR.pos));
  typeW.raw(Uint8Array.of(0x60, 0x00, 0x00));

  // Imports: count functions and globals, then append the interrupt import.
  let funcImports = 0;
  let globalImports = 0;
  const importSec = byId(2);
  const importW = new Writer();
  {
    const [r, count] = importSec ? vecReader(importSec.body) : [new Reader(new Uint8Array()), 0];
    for (let i = 0; i < count; i++) {
      r.name();
      r.name();
      const { kind } = readImportDesc(r);
      if (kind === IMPORT_FUNC) funcImports++;
      else if (kind === IMPORT_GLOBAL) globalImports++;
    }
    importW.u32(count + 1);
    if (importSec) importW.raw(importSec.body.subarray(new Reader(importSec.body).pos + lebLength(count)));
    for (const s of [INTERRUPT_MODULE, INTERRUPT_NAME]) {
      const enc = new TextEncoder().encode(s);
      importW.u32(enc.length);
      importW.raw(enc);
    }
    importW.byte(0x00);
    importW.u32(newType);
  }
  const interruptFunc = funcImports;
  const remapFunc = (idx: number) => (idx >= funcImports ? idx + 1 : idx);
  // The type of every defined function, for its parameter count (its locals are numbered after its parameters).
  const funcTypes: number[] = [];
  {
    const funcSec = byId(3);
    const [r, count] = funcSec ? vecReader(funcSec.body) : [new Reader(new Uint8Array()), 0];
    for (let i = 0; i < count; i++) funcTypes.push(r.u32());
  }

  // Recursive functions and their unchecked twins (wasm-recursion.ts), appended after every defined function.
  const codeSec = byId(10);
  const code = codeSec ? mapCode(codeSec.body, funcImports) : undefined;
  const comp = recursiveComponents(code?.calls ?? []);
  const twins = chooseTwins(comp, code?.sizes ?? []);
  const twinBase = funcImports + 1 + funcTypes.length;

  // The counter global: appended after all globals, so no existing index moves.
  const globalSec = byId(6);
  const [globalR, globalCount] = globalSec ? vecReader(globalSec.body) : [new Reader(new Uint8Array()), 0];
  const counter = globalImports + globalCount;
  const checks = checkCode(counter, interruptFunc, checkEvery);
  const constRw: Rewrite = { remapFunc, check: new Uint8Array() };
  const fn: FunctionContext = { checks, params, funcTypes, remapFunc };
  const rewriteBody = (
    section: Uint8Array,
    offset: number,
    i: number,
    remapCall: (idx: number) => number,
    entry: boolean,
  ) => rewriteFunction(fn, section, offset, i, remapCall, entry);

  const globalW = new Writer();
  globalW.u32(globalCount + 1);
  for (let i = 0; i < globalCount; i++) {
    const s = globalR.pos;
    skipValType(globalR);
    globalR.byte();
    globalW.raw(globalR.buf.subarray(s, globalR.pos));
    rewriteExpr(globalR, globalW, constRw, globalR.end);
  }
  globalW.raw(Uint8Array.of(0x7f, 0x01, 0x41));
  globalW.i32(checkEvery);
  globalW.byte(0x0b);

  const replaced = new Map<number, Uint8Array>([
    [1, typeW.finish()],
    [2, importW.finish()],
    [6, globalW.finish()],
  ]);

  for (const s of sections) {
    if (s.id === 7) {
      const [r, count] = vecReader(s.body);
      const w = new Writer();
      w.u32(count);
      for (let i = 0; i < count; i++) {
        const nameStart = r.pos;
        r.name();
        w.raw(r.buf.subarray(nameStart, r.pos));
        const kind = r.byte();
        const idx = r.u32();
        w.byte(kind);
        w.u32(kind === 0x00 ? remapFunc(idx) : idx);
      }
      replaced.set(7, w.finish());
    } else if (s.id === 8) {
      const w = new Writer();
      w.u32(remapFunc(new Reader(s.body).u32()));
      replaced.set(8, w.finish());
    } else if (s.id === 4) {
      replaced.set(4, capTables(s.body));
    } else if (s.id === 5 && maxPages !== undefined) {
      replaced.set(5, capMemories(s.body, maxPages));
    } else if (s.id === 9) {
      replaced.set(9, rewriteElements(s.body, constRw));
    } else if (s.id === 10) {
      const [, count] = vecReader(s.body);
      const w = new Writer();
      w.u32(count + twins.size);
      // The checked functions: calls within a recursion go to the callee's twin where it has one.
      for (let i = 0; i < count; i++) {
        const remap = (idx: number) => {
          const d = idx - funcImports;
          const twin = d >= 0 && comp[d] !== -1 && comp[d] === comp[i] ? twins.get(d) : undefined;
          return twin === undefined ? remapFunc(idx) : twinBase + twin;
        };
        const bytes = rewriteBody(s.body, code!.offsets[i]!, i, remap, true);
        w.u32(bytes.length);
        w.raw(bytes);
      }
      // The twins: the same code without the entry check, calling the checked functions.
      for (const f of twins.keys()) {
        const bytes = rewriteBody(s.body, code!.offsets[f]!, f, remapFunc, false);
        w.u32(bytes.length);
        w.raw(bytes);
      }
      replaced.set(10, w.finish());
    } else if (s.id === 3 && twins.size) {
      const w = new Writer();
      w.u32(funcTypes.length + twins.size);
      for (const t of funcTypes) w.u32(t);
      for (const f of twins.keys()) w.u32(funcTypes[f]!);
      replaced.set(3, w.finish());
    }
  }

  // Re-emit in canonical order, adding the type/import/global sections where the module had none.
  const out = new Writer();
  out.raw(input.subarray(0, 8));
  const emit = (id: number, body: Uint8Array) => {
    out.byte(id);
    out.u32(body.length);
    out.raw(body);
  };
  const pending = [1, 2, 6].filter((id) => !byId(id));
  const flushBefore = (rank: number) => {
    while (pending.length && SECTION_ORDER[pending[0]!]! < rank) emit(pending[0]!, replaced.get(pending.shift()!)!);
  };
  for (const s of sections) {
    if (s.id === 0) {
      if (!isNameSection(s.body)) emit(0, s.body); // the name section would describe the old indices
      continue;
    }
    flushBefore(SECTION_ORDER[s.id] ?? 99);
    emit(s.id, replaced.get(s.id) ?? s.body);
  }
  flushBefore(100);
  return { bytes: out.finish(), interruptFunc };
}

/** Parameter count of every type in the type section (function types only). */
function paramCounts(body: Uint8Array | undefined): number[] {
  if (!body) return [];
  const [r, count] = vecReader(body);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    if (r.byte() !== 0x60) throw new WasmFormatError("GC/rec types are not supported");
    const n = r.u32();
    for (let p = 0; p < n; p++) skipValType(r);
    const results = r.u32();
    for (let p = 0; p < results; p++) skipValType(r);
    out.push(n);
  }
  return out;
}

function isNameSection(body: Uint8Array): boolean {
  const r = new Reader(body);
  const len = r.u32();
  return new TextDecoder().decode(r.bytes(len)) === "name";
}
