import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { assemble, http, runTask, type Serve, startServe } from "../helpers.ts";

// A module gets WASI calls only for the names it imports (src/proplet/runtime/execute.ts), and a reactor that
// imports none is initialised without the shim: odd names, names of Object's prototype, wrong signatures and a
// trapping `_initialize` each fail their task with a reason, and serve's local proplet runs the next task. Names
// of Object's prototype (`constructor`, `hasOwnProperty`) were found on the import objects' prototypes, and the
// guest called the host's functions; now they are missing, as any unknown name is.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const W = "wasi_snapshot_preview1";
const task = async (name: string, wat: string) => ({
  name,
  file: Buffer.from(await assemble(wat)).toString("base64"),
  inputs: [],
});
const reactor = (imports: string, body: string) =>
  `(module ${imports} (memory (export "memory") 1) (func (export "main") (result i32) ${body}))`;

describe("a module's WASI imports", () => {
  test("unknown names, Object.prototype's names, wrong signatures and a trapping _initialize fail with a reason", async () => {
    const cases: [string, string][] = [
      ["unknown", reactor(`(import "${W}" "no_such_call" (func $f (result i32)))`, "(call $f)")],
      ["proto", reactor(`(import "${W}" "__proto__" (func $f (result i32)))`, "(call $f)")],
      [
        "has-own",
        reactor(`(import "${W}" "hasOwnProperty" (func $f (param i32) (result i32)))`, "(call $f (i32.const 1))"),
      ],
      [
        "ctor",
        reactor(`(import "wasi_unstable" "constructor" (func $f (result i32)))`, "(call $f) (drop) (unreachable)"),
      ],
      [
        "module-ctor",
        reactor(`(import "constructor" "call" (func $f (result i32)))`, "(call $f) (drop) (unreachable)"),
      ],
      [
        "wrong-sig",
        reactor(
          `(import "${W}" "fd_write" (func $f (param i64 i64) (result i64)))`,
          "(i32.wrap_i64 (call $f (i64.const 1) (i64.const 0)))",
        ),
      ],
      [
        "init-traps",
        `(module (memory (export "memory") 1) (func (export "_initialize") unreachable) (func (export "main") (result i32) i32.const 7))`,
      ],
    ];
    for (const [name, wat] of cases) {
      const t = await runTask(s.url, await task(name, wat));
      console.log(`${name}: ${t.status}: ${t.error}`);
      expect(t.status).toBe("Failed");
      expect(t.error).toBeTruthy();
      // A name that is no WASI call is refused when the module is instantiated: the guest never calls the host's
      // Object, Object.prototype.hasOwnProperty or Function.prototype.call (found on the imports' prototypes before).
      if (!["wrong-sig", "init-traps"].includes(name)) expect(t.error).toMatch(/import/i);
    }
    // A module without WASI imports still runs, with its _initialize run first.
    const ok = await runTask(
      s.url,
      await task(
        "init-ok",
        `(module (global $g (mut i32) (i32.const 0)) (func (export "_initialize") (global.set $g (i32.const 41))) (func (export "main") (result i32) (i32.add (global.get $g) (i32.const 1))))`,
      ),
    );
    expect(ok).toMatchObject({ status: "Completed", results: "42" });
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 60_000);
});
