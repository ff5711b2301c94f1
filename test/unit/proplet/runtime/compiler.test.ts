import { describe, expect, test } from "bun:test";
import { ThreadCompiler } from "../../../../src/proplet/runtime/compiler.ts";
import { fixture } from "../../../helpers.ts";

// The compile thread (compiler.ts): a module compiled there arrives usable on this thread; a bad one fails with
// the instrumenter's reason; one that takes too long ends the thread, and the next module gets a new one.

describe("compile thread", () => {
  test("a module compiled on its thread runs here; a broken one fails saying why", async () => {
    const c = new ThreadCompiler();
    const { module, functions } = await c.core(fixture("add"));
    expect(functions.has("add")).toBe(true);
    const inst = new WebAssembly.Instance(module, { propeller: { interrupt: () => {} } });
    expect((inst.exports.add as (a: number, b: number) => number)(2, 3)).toBe(5);
    const broken = await c.core(Uint8Array.of(0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 99)).catch((e: Error) => e.message);
    expect(broken).toBe("unexpected end of module");
  });

  test("past its time limit the thread is ended and what waited fails; the next module starts a new one", async () => {
    const c = new ThreadCompiler(1);
    const [a, b] = await Promise.allSettled([c.core(fixture("fib")), c.core(fixture("add"))]);
    expect(a.status).toBe("rejected");
    expect((a as PromiseRejectedResult).reason.message).toMatch(/took longer than 0\.00[12]s/);
    expect(b.status).toBe("rejected");
    const again = new ThreadCompiler();
    expect((await again.core(fixture("fib"))).functions.size).toBeGreaterThan(0);
  });
});
