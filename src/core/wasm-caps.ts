// What a guest module may hold outside the interrupt checks: its memory and its tables, capped in the module
// itself (wasm-instrument.ts rewrites its sections), so a grow past the cap fails inside the guest.
import { vecReader, WasmFormatError, Writer } from "./wasm-binary.ts";

/** Bytes in a Wasm page. */
export const PAGE = 65536;
/** Pages in MiB, rounded up (a shift went negative past 2 GiB: "needs -2048 MiB"). */
const mib = (pages: number) => Math.ceil((pages * PAGE) / 2 ** 20);

/**
 * Gives every memory the module defines a maximum of at most `maxPages`, so a `memory.grow` past it fails inside
 * the guest (returns -1), as a Wasm runtime's memory limit does. A module whose initial memory is over the cap
 * cannot run at all.
 */
export function capMemories(body: Uint8Array, maxPages: number): Uint8Array {
  const [r, count] = vecReader(body);
  // The cap is the task's: with several memories (multi-memory) each got it whole, 40 of them 2.5 GB under a
  // 64 MiB cap. WASI programs have one.
  if (count > 1) throw new WasmFormatError(`the module defines ${count} memories: this runtime runs modules with one`);
  const w = new Writer();
  w.u32(count);
  for (let i = 0; i < count; i++) {
    const flags = r.byte();
    if (flags > 1) throw new WasmFormatError("shared and 64-bit memories are not supported by this runtime");
    const min = r.u32();
    const max = flags === 1 ? r.u32() : Infinity;
    if (min > maxPages) {
      throw new WasmFormatError(
        `the module needs ${mib(min)} MiB of memory at start: over the cap of ${mib(maxPages)} MiB`,
      );
    }
    w.byte(1);
    w.u32(min);
    w.u32(Math.min(max, maxPages));
  }
  return w.finish();
}

/**
 * The most table elements a module may hold, all its tables together: a table grows outside linear memory, so the
 * memory cap did not bound it (a 206-byte module took serve to 3.4 GB with five tables of 10 million). Programs
 * compiled from C or Rust have one table of a few thousand functions.
 */
export const MAX_TABLE_ELEMENTS = 1 << 20;

/**
 * Gives every table a maximum, so together they hold at most MAX_TABLE_ELEMENTS: each may grow to its share of
 * what the others' minimums leave (`table.grow` past it fails inside the guest, returning -1).
 */
export function capTables(body: Uint8Array): Uint8Array {
  const [r, count] = vecReader(body);
  const tables: { type: number; min: number; max: number }[] = [];
  for (let i = 0; i < count; i++) {
    const type = r.byte();
    if (type !== 0x70 && type !== 0x6f)
      throw new WasmFormatError("a table of this type is not supported by this runtime");
    const flags = r.byte();
    if (flags > 1) throw new WasmFormatError("shared and 64-bit tables are not supported by this runtime");
    const min = r.u32();
    tables.push({ type, min, max: flags === 1 ? r.u32() : Infinity });
  }
  const mins = tables.reduce((n, t) => n + t.min, 0);
  if (mins > MAX_TABLE_ELEMENTS)
    throw new WasmFormatError(
      `the module's tables need ${mins} elements at start: over the cap of ${MAX_TABLE_ELEMENTS}`,
    );
  const share = Math.floor((MAX_TABLE_ELEMENTS - mins) / Math.max(1, count));
  const w = new Writer();
  w.u32(count);
  for (const t of tables) {
    w.byte(t.type);
    w.byte(1);
    w.u32(t.min);
    w.u32(Math.min(t.max, t.min + share));
  }
  return w.finish();
}
