import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ModuleCache } from "../../../../src/proplet/runtime/modules.ts";
import { WorkerPool } from "../../../../src/proplet/runtime/pool.ts";
import { fixture, tempDir } from "../../../helpers.ts";

// WASI preview-2 components on the in-process runtime, on real worker threads: built from test/fixtures/components
// and transpiled by jco when first seen.
const pool = new WorkerPool(1);
const cache = new ModuleCache();
afterAll(() => pool.close());

async function run(
  file: string,
  name: string,
  inputs: string[] = [],
  extra: Partial<Parameters<WorkerPool["run"]>[0]> = {},
) {
  const compiled = await cache.load(fixture(file));
  return pool.run({ compiled, name, inputs, env: {}, options: { dirs: [], env: {} }, ...extra });
}

describe("components", () => {
  test("a custom export is called with the types its WIT declares", async () => {
    const call = async (name: string, inputs: string[]) => (await run("calc.component", name, inputs)).done;
    expect(await call("add", ["10", "20"])).toMatchObject({ ok: true, result: "30" });
    expect(await call("greet", ["Ada"])).toMatchObject({ ok: true, result: "hello, Ada" });
    expect(await call("sum", ["[1.5, 2, 0.25]"])).toMatchObject({ ok: true, result: "3.75" });
    expect(await call("scale", ["[1,-2,3]", "3"])).toMatchObject({ ok: true, result: "[3,-6,9]" });
    expect(await call("both", ["true", "false"])).toMatchObject({ ok: true, result: "false" });
    expect(await call("half", ["3"])).toMatchObject({ ok: true, result: "1.5" });
  });

  test("inputs that do not fit the WIT types are refused, naming the input and the type", async () => {
    const call = async (name: string, inputs: string[]) => (await run("calc.component", name, inputs)).done;
    expect(await call("add", ["-1", "2"])).toMatchObject({ ok: false, error: 'input 0 ("-1") is not a valid u32' });
    expect(await call("add", ["4294967296", "2"])).toMatchObject({ ok: false, error: expect.stringContaining("u32") });
    expect(await call("add", ["1"])).toMatchObject({
      ok: false,
      error: "add takes 2 argument(s) (a: u32, b: u32), got 1 input(s)",
    });
    expect(await call("sum", ["1,2"])).toMatchObject({
      ok: false,
      error: 'input 0 ("1,2") is not a valid list<f64> (a JSON array)',
    });
    expect(await call("both", ["yes", "no"])).toMatchObject({ ok: false, error: expect.stringContaining("bool") });
    expect(await call("nope", [])).toMatchObject({
      ok: false,
      error: expect.stringContaining("the component exports add, greet, sum, scale, both, half, spin"),
    });
  });

  test("a command component gets argv and env, and its stdout is the result", async () => {
    const r = await (await run("args.component", "args", ["x", "y z"], { env: { GREETING: "hi" } })).done;
    expect(r).toMatchObject({ ok: true, result: "args x y z\nGREETING=hi\n" });
    const failed = await (await run("args.component", "args", ["!no"])).done;
    // WASI preview 2's exit carries only ok or error: any non-zero status is exit code 1, as wasmtime reports it.
    expect(failed).toMatchObject({ ok: false, exitCode: 1, error: "exit code 1: refused !no" });
  });

  test("a command whose wasi:cli/run returns its error case ends with exit code 1", async () => {
    const tools = await import("@bytecodealliance/jco-transpile/wasm-tools");
    // Written as a component directly: `run` returns result::err without calling exit (the adapter never does).
    const component = await tools.parse(`(component
      (core module $m (func (export "run") (result i32) i32.const 1))
      (core instance $i (instantiate $m))
      (func $run (result (result)) (canon lift (core func $i "run")))
      (instance $inst (export "run" (func $run)))
      (export "wasi:cli/run@0.2.0" (instance $inst)))`);
    const compiled = await cache.load(component);
    const r = await pool.run({ compiled, name: "run", inputs: [], env: {}, options: { dirs: [], env: {} } }).done;
    expect(r).toMatchObject({ ok: false, exitCode: 1, error: "exit code 1" });
  });

  test("a component's sleep blocks its worker for that long, and a stop still ends it", async () => {
    const t0 = performance.now();
    const r = await (await run("args.component", "args", ["sleep", "300"])).done;
    expect(r).toMatchObject({ ok: true, result: "args sleep 300\n" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    const long = await run("args.component", "args", ["sleep", "60000"]);
    await Bun.sleep(200);
    const t1 = performance.now();
    long.stop();
    expect(await long.done).toMatchObject({ ok: false, error: "task stopped" });
    expect(performance.now() - t1).toBeLessThan(500); // ended by the interrupt check, not by killing the worker
  });

  test("stop and timeout end a spinning component, and the worker runs the next task", async () => {
    const spinning = await run("calc.component", "spin");
    await Bun.sleep(200);
    const t0 = performance.now();
    spinning.stop();
    expect(await spinning.done).toMatchObject({ ok: false, error: "task stopped" });
    expect(performance.now() - t0).toBeLessThan(1000);
    const timed = await (await run("calc.component", "spin", [], { timeoutMs: 300 })).done;
    expect(timed).toMatchObject({ ok: false, error: "task timed out after 0.3s" });
    expect(await (await run("calc.component", "add", ["1", "2"])).done).toMatchObject({ ok: true, result: "3" });
  });

  test("transpiled once per sha256; a broken component is refused with the reason", async () => {
    const a = cache.load(fixture("calc.component"));
    expect(a).toBe(cache.load(fixture("calc.component")));
    const broken = new Uint8Array(fixture("calc.component")).slice(0, 100);
    await expect(cache.load(broken)).rejects.toThrow(/^invalid component: /);
    // The component-model header alone is no component either.
    await expect(cache.load(new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0, 0xff]))).rejects.toThrow(
      /^invalid component/,
    );
  });

  test("a preopened directory is the component's to read and write, and nothing else of the host is", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "in.txt"), "data");
    const options = { dirs: [{ host: dir, guest: "/d" }], env: {} };
    const cat = (path: string) => run("args.component", "args", ["cat", path], { options });
    expect(await (await cat("/d/in.txt")).done).toMatchObject({ ok: true, result: "data" });
    const written = await (await run("args.component", "args", ["write", "/d/out.txt", "kept"], { options })).done;
    expect(written.ok).toBe(true);
    expect(readFileSync(join(dir, "out.txt"), "utf8")).toBe("kept");
    for (const path of ["/etc/hostname", "/d/../../etc/hostname"]) {
      expect(await (await cat(path)).done).toMatchObject({ ok: false, exitCode: 1 });
    }
    const ro = { dirs: [{ host: dir, guest: "/d", readonly: true }], env: {} };
    await (await run("args.component", "args", ["write", "/d/in.txt", "changed"], { options: ro })).done;
    expect(readFileSync(join(dir, "in.txt"), "utf8")).toBe("data");
  });

  test("a transpile that takes too long fails the task and frees jco's thread for the next component", async () => {
    const { compileComponent } = await import("../../../../src/proplet/runtime/component.ts");
    const { hereCompiler } = await import("../../../../src/proplet/runtime/compiler.ts");
    // Every call below transpiles afresh (no cache): 1 ms is less than any transpile takes.
    await expect(compileComponent(fixture("args.component"), undefined, hereCompiler, 1)).rejects.toThrow(
      "invalid component: transpiling the component took longer than 0.001s",
    );
    const again = await compileComponent(fixture("args.component"), undefined, hereCompiler);
    expect(again.world.command).toBe(true);
  });

  test("a component importing what this host does not provide is refused before it runs", async () => {
    const tools = await import("@bytecodealliance/jco-transpile/wasm-tools");
    const core = await tools.parse(
      `(module (import "$root" "log" (func (param i32 i32))) (memory (export "memory") 1) (func (export "go")))`,
    );
    const witSource = "package t:t; world w { import log: func(msg: string); export go: func(); }";
    const component = await tools.componentNew(await tools.componentEmbed({ binary: core, witSource }));
    await expect(cache.load(component)).rejects.toThrow(
      "the component imports log, which this runtime does not provide",
    );
  });
});
