import { Writer } from "../src/core/wasm-binary.ts";

// A module whose code is costly to instrument and compile, for the hardening attacks
// (test/attack/hardening.test.ts, hardening-claims.test.ts, hardening-files.test.ts).

/**
 * A valid module of `n` functions () -> i32 (`main` is the first), each a loop of `ops` adds: code that takes the
 * instrumenter seconds (a big data section alone would be cheap to instrument).
 */
export function bigModule(n: number, ops: number): Uint8Array {
  const body = new Writer();
  body.raw(Uint8Array.of(1, 2, 0x7f)); // two i32 locals
  body.raw(Uint8Array.of(0x03, 0x40)); // loop
  for (let i = 0; i < ops; i++) body.raw(Uint8Array.of(0x20, 0, 0x41, (i % 63) + 1, 0x6a, 0x21, 0)); // l0 += k
  body.raw(Uint8Array.of(0x20, 1, 0x41, 1, 0x6a, 0x22, 1, 0x41, 3, 0x48, 0x0d, 0)); // while (++l1 < 3)
  body.raw(Uint8Array.of(0x0b, 0x20, 0, 0x0b)); // end loop; l0; end
  const fn = body.finish();
  const m = new Writer();
  m.raw(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
  const section = (id: number, content: Uint8Array) => {
    m.byte(id);
    m.u32(content.length);
    m.raw(content);
  };
  section(1, Uint8Array.of(1, 0x60, 0, 1, 0x7f));
  const funcs = new Writer();
  funcs.u32(n);
  for (let i = 0; i < n; i++) funcs.u32(0);
  section(3, funcs.finish());
  section(7, Uint8Array.of(1, 4, 0x6d, 0x61, 0x69, 0x6e, 0, 0)); // export "main" = function 0
  const code = new Writer();
  code.u32(n);
  for (let i = 0; i < n; i++) {
    code.u32(fn.length);
    code.raw(fn);
  }
  section(10, code.finish());
  return m.finish();
}

/** What `main` of bigModule returns: three passes of the adds. */
export function bigModuleResult(ops: number): number {
  let sum = 0;
  for (let i = 0; i < ops; i++) sum += (i % 63) + 1;
  return 3 * sum;
}
