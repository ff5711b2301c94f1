import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ModuleCache } from "../../../../src/proplet/runtime/modules.ts";
import { WorkerPool } from "../../../../src/proplet/runtime/pool.ts";
import { fixture, tempDir } from "../../../helpers.ts";

// The in-process runtime on real worker threads.
const pool = new WorkerPool(2);
const cache = new ModuleCache();
afterAll(() => pool.close());

const run = (
  name: string,
  module: string,
  inputs: string[] = [],
  extra: Partial<Parameters<WorkerPool["run"]>[0]> = {},
) =>
  pool.run({ compiled: cache.load(fixture(module)), name, inputs, env: {}, options: { dirs: [], env: {} }, ...extra });

describe("in-process runtime", () => {
  test("core export with typed inputs", async () => {
    expect(await run("add", "add", ["10", "20"]).done).toMatchObject({ ok: true, result: "30" });
    expect(await run("whatever", "main-only", ["3", "1.5"]).done).toMatchObject({ ok: true, result: "4.5" });
    expect(await run("add", "add", ["10"]).done).toMatchObject({
      ok: false,
      error: expect.stringContaining("takes 2 argument(s)"),
    });
  });

  test("WASI command: argv, env and stdout", async () => {
    const r = await run("hello", "hello", ["Ada", "Bob"], { env: { GREETING: "Hi" } }).done;
    expect(r).toMatchObject({ ok: true, result: "Hi Ada Bob from hello\n" });
  });

  test("a non-zero exit fails with the code and stderr", async () => {
    const r = await run("fail", "fail").done;
    expect(r.ok).toBe(false);
    expect(r.error).toBe("exit code 3: something went wrong");
  });

  test("no file system unless a directory is preopened, and `..` does not escape it", async () => {
    expect((await run("cat", "cat", ["/etc/hostname"]).done).ok).toBe(false);
    const dir = tempDir();
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "in.txt"), "from the host\n");
    const options = { dirs: [{ host: join(dir, "sub"), guest: "/data" }], env: {} };
    const ok = await run("cat", "cat", ["/data/in.txt"], { options }).done;
    expect(ok).toMatchObject({ ok: true, result: "from the host\n" });
    expect(readFileSync(join(dir, "sub", "out.txt"), "utf8")).toBe("written by guest\n");
    const escaped = await run("cat", "cat", ["/data/../../etc/hostname"], { options }).done;
    expect(escaped.ok).toBe(false);
  });

  test("stop ends a pure-Wasm infinite loop within a second and the worker is reusable", async () => {
    const r = run("spin", "spin");
    await Bun.sleep(200);
    const t0 = performance.now();
    r.stop();
    const res = await r.done;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(res).toMatchObject({ ok: false, error: "task stopped" });
    expect(await run("add", "add", ["1", "2"]).done).toMatchObject({ ok: true, result: "3" });
  });

  test("a timeout ends a spin loop", async () => {
    const t0 = performance.now();
    const res = await run("spin", "spin", [], { timeoutMs: 300 }).done;
    expect(res).toMatchObject({ ok: false, error: "task timed out after 0.3s" });
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test("modules are compiled once per sha256", () => {
    const before = cache.size;
    const a = cache.load(fixture("fib"));
    const b = cache.load(fixture("fib"));
    expect(a).toBe(b);
    expect(cache.size).toBe(before + 1);
  });
});
