import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ModuleCache } from "../../../../src/proplet/runtime/modules.ts";
import { WorkerPool } from "../../../../src/proplet/runtime/pool.ts";
import { assemble, fixture, tempDir } from "../../../helpers.ts";

// The in-process runtime on real worker threads.
const pool = new WorkerPool(2);
const cache = new ModuleCache();
afterAll(() => pool.close());

const run = (
  name: string,
  module: string,
  inputs: string[] = [],
  extra: Partial<Parameters<WorkerPool["run"]>[0]> = {},
) => started(cache.load(fixture(module)), name, inputs, extra);

/** A run started once its module is compiled: `.done` and `.stop` as the pool's, for tests that await both. */
function started(
  compiled: ReturnType<ModuleCache["load"]>,
  name: string,
  inputs: string[],
  extra: Partial<Parameters<WorkerPool["run"]>[0]>,
) {
  const running = compiled.then((c) =>
    pool.run({ compiled: c, name, inputs, env: {}, options: { dirs: [], env: {} }, ...extra }),
  );
  return {
    done: running.then((r) => r.done),
    stop: (reason?: string) => void running.then((r) => r.stop(reason)),
    running,
  };
}

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

  test("links in a preopened directory are never followed, for reads or writes: each is a missing file", async () => {
    const dir = tempDir();
    const data = join(dir, "data");
    mkdirSync(data);
    writeFileSync(join(dir, "secret.txt"), "outside the tree\n");
    writeFileSync(join(dir, "victim.txt"), "untouched\n");
    writeFileSync(join(data, "real.txt"), "inside\n");
    symlinkSync(join(dir, "secret.txt"), join(data, "leak.txt"));
    symlinkSync(join(dir, "victim.txt"), join(data, "out.txt")); // cat writes out.txt beside what it reads
    symlinkSync(join(data, "real.txt"), join(data, "alias.txt"));
    symlinkSync(join(dir, "nowhere"), join(data, "dangling.txt"));
    symlinkSync("..", join(data, "up"));
    const options = { dirs: [{ host: data, guest: "/data" }], env: {} };
    const leak = await run("cat", "cat", ["/data/leak.txt"], { options }).done;
    expect(leak.ok).toBe(false);
    expect(leak.result).not.toContain("outside the tree");
    expect((await run("cat", "cat", ["/data/up/secret.txt"], { options }).done).ok).toBe(false);
    // Even a link that stays inside: the tree is read from handles that never follow one (preopen.ts).
    const alias = await run("cat", "cat", ["/data/alias.txt"], { options }).done;
    expect(alias).toMatchObject({ ok: false, result: "" });
    expect((await run("cat", "cat", ["/data/real.txt"], { options }).done).result).toBe("inside\n");
    // The guest wrote out.txt, a link to a file outside: nothing is written through it.
    expect(readFileSync(join(dir, "victim.txt"), "utf8")).toBe("untouched\n");
    expect(readlinkSync(join(data, "out.txt"))).toBe(join(dir, "victim.txt"));
  });

  test("WASI is made only for the calls a module imports: a reactor without WASI is initialised, a call the shim lacks is refused", async () => {
    // No WASI import: `_initialize` still runs before the export, as the shim's initialize() ran it.
    const reactor = cache.load(
      await assemble(`(module (global $g (mut i32) (i32.const 1))
        (func (export "_initialize") (global.set $g (i32.const 41)))
        (func (export "get") (param i32) (result i32) (i32.add (global.get $g) (local.get 0))))`),
    );
    expect(await started(reactor, "get", ["1"], {}).done).toMatchObject({ ok: true, result: "42" });
    // One WASI call the module imports works (its stdout is the export's output here: a write to fd 1)...
    const writes = cache.load(
      await assemble(`(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (data (i32.const 16) "hi")
        (func (export "say") (result i32)
          (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 2))
          (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))`),
    );
    expect(await started(writes, "say", [], {}).done).toMatchObject({ ok: true, result: "0" });
    // ...and one it names that WASI preview 1 does not have stays missing: the instance is refused.
    const unknown = cache.load(
      await assemble(`(module (import "wasi_snapshot_preview1" "no_such_call" (func $x))
        (func (export "go") (call $x)))`),
    );
    const r = await started(unknown, "go", [], {}).done;
    expect(r.ok).toBe(false);
    expect(r.error).toContain("no_such_call");
  });

  test("memory.grow stops at the task's cap, inside the guest", async () => {
    const compiled = await cache.load(fixture("grow"), 64);
    const r = await pool.run({ compiled, name: "grow", inputs: [], env: {}, options: { dirs: [], env: {} } }).done;
    // It starts with 1 page and grows 16 at a time: the last grow that fits leaves it at 1009 of the 1024 pages
    // (64 KiB each) that make 64 MiB.
    expect(r).toMatchObject({ ok: true, result: "1009" });
    const big = new Uint8Array(fixture("grow"));
    await expect(cache.load(big, 0.01)).rejects.toThrow("over the cap");
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

  test("stop ends a counted loop and a recursion (checked in strips and every second call) within a second", async () => {
    // A counted loop of 4 billion steps, run again and again (the recursion: the fib fixture).
    const counted = cache.load(
      await assemble(`(module (func (export "count") (local $i i32)
        (loop $again
          (local.set $i (i32.const 0))
          (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const -1))))
          (br $again))))`),
    );
    for (const r of [started(counted, "count", [], {}), run("fib", "fib", ["60"])]) {
      await Bun.sleep(200);
      const t0 = performance.now();
      r.stop();
      expect(await r.done).toMatchObject({ ok: false, error: "task stopped" });
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });

  test("a timeout ends a spin loop", async () => {
    const t0 = performance.now();
    const res = await run("spin", "spin", [], { timeoutMs: 300 }).done;
    expect(res).toMatchObject({ ok: false, error: "task timed out after 0.3s" });
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test.if(process.platform === "linux")(
    "workers run under SCHED_BATCH (their wake-up does not preempt the event loop); the event loop does not",
    async () => {
      expect(await run("add", "add", ["1", "2"]).done).toMatchObject({ ok: true, result: "3" });
      // /proc/self/task/TID/stat: the name in parentheses (it may hold spaces), then fields from the 3rd on;
      // the 41st is the scheduling policy (sched(7): 0 SCHED_OTHER, 3 SCHED_BATCH).
      const threads = readdirSync("/proc/self/task").map((tid) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const policy = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[41 - 3]);
        return { tid: Number(tid), name, policy };
      });
      expect(threads.find((t) => t.tid === process.pid)?.policy).toBe(0);
      const batch = threads.filter((t) => t.name === "Worker" && t.policy === 3);
      expect(batch.length).toBeGreaterThanOrEqual(pool.workers);
    },
  );

  test("modules are compiled once per sha256", () => {
    const own = new ModuleCache(); // not the shared one: other tests may have loaded fib already
    const before = own.size;
    const a = own.load(fixture("fib"));
    const b = own.load(fixture("fib"));
    expect(a).toBe(b);
    expect(own.size).toBe(before + 1);
  });
});

describe("workers spawned for a burst", () => {
  test("beyond the first, even of the warm count, end after idling; the first stays and runs the next task", async () => {
    const pool = new WorkerPool(2, 3, 300);
    try {
      const compiled = await cache.load(fixture("spin"));
      const spec = { compiled, name: "spin", inputs: [], env: {}, options: { dirs: [], env: {} } };
      const runs = [pool.run(spec), pool.run(spec), pool.run(spec)];
      expect(pool.workers).toBe(3);
      for (const r of runs) r.stop();
      for (const r of runs) expect(await r.done).toMatchObject({ ok: false, error: "task stopped" });
      await Bun.sleep(800);
      expect(pool.workers).toBe(1);
      await Bun.sleep(800); // the first never retires
      expect(pool.workers).toBe(1);
      const add = await cache.load(fixture("add"));
      expect(await pool.run({ ...spec, compiled: add, name: "add", inputs: ["2", "3"] }).done).toMatchObject({
        ok: true,
        result: "5",
      });
      expect(pool.workers).toBe(1); // no thread started for it
    } finally {
      pool.close();
    }
  });

  test("a worker that went idle later retires once it has idled the time, not a whole period after", async () => {
    const pool = new WorkerPool(1, 4, 1000);
    try {
      const compiled = await cache.load(fixture("spin"));
      const spec = { compiled, name: "spin", inputs: [], env: {}, options: { dirs: [], env: {} } };
      const [a, b, c, d] = [pool.run(spec), pool.run(spec), pool.run(spec), pool.run(spec)];
      for (const r of [a, b]) r.stop();
      await Promise.all([a.done, b.done]);
      await Bun.sleep(500);
      for (const r of [c, d]) r.stop();
      await Promise.all([c.done, d.done]);
      // a's and b's workers retire at ~1000 ms, c's at ~1500 ms (d's stays): by 1750 ms only d's is left (c's
      // stayed until 2000 ms before).
      await Bun.sleep(1250);
      expect(pool.workers).toBe(1);
    } finally {
      pool.close();
    }
  });

  test("a warm worker no task took retires too", async () => {
    const pool = new WorkerPool(2, 3, 300);
    try {
      const add = await cache.load(fixture("add"));
      const spec = { compiled: add, name: "add", inputs: ["2", "3"], env: {}, options: { dirs: [], env: {} } };
      expect(await pool.run(spec).done).toMatchObject({ ok: true, result: "5" });
      expect(pool.workers).toBe(2);
      await Bun.sleep(800);
      expect(pool.workers).toBe(1);
    } finally {
      pool.close();
    }
  });

  test("end after idling, down to the warm count, and the pool still runs tasks", async () => {
    const burst = new WorkerPool(1, 3, 300);
    try {
      const compiled = await cache.load(fixture("spin"));
      const spec = { compiled, name: "spin", inputs: [], env: {}, options: { dirs: [], env: {} } };
      const runs = [burst.run(spec), burst.run(spec), burst.run(spec)];
      expect(burst.workers).toBe(3);
      for (const r of runs) r.stop();
      for (const r of runs) expect(await r.done).toMatchObject({ ok: false, error: "task stopped" });
      expect(burst.workers).toBe(3); // idle, not yet retired
      await Bun.sleep(800);
      expect(burst.workers).toBe(1);
      const add = await cache.load(fixture("add"));
      const r = burst.run({ ...spec, compiled: add, name: "add", inputs: ["2", "3"] });
      expect(await r.done).toMatchObject({ ok: true, result: "5" });
    } finally {
      burst.close();
    }
  });

  test("the kept worker retires too once it idled after a burst of runs; the next task starts a fresh one", async () => {
    const pool = new WorkerPool(1, 2, 300, 5); // retire after 5 runs here (1000 in a proplet)
    try {
      const add = await cache.load(fixture("add"));
      const spec = { compiled: add, name: "add", inputs: ["2", "3"], env: {}, options: { dirs: [], env: {} } };
      for (let i = 0; i < 4; i++) expect(await pool.run(spec).done).toMatchObject({ ok: true, result: "5" });
      await Bun.sleep(600);
      expect(pool.workers).toBe(1); // 4 runs: under the 5 that make it worth retiring, it stays
      expect(await pool.run(spec).done).toMatchObject({ ok: true, result: "5" });
      expect(pool.workers).toBe(1); // not yet idle long enough
      await Bun.sleep(600);
      expect(pool.workers).toBe(0);
      expect(await pool.run({ ...spec, inputs: ["40", "2"] }).done).toMatchObject({ ok: true, result: "42" });
      await Bun.sleep(600);
      expect(pool.workers).toBe(1); // the fresh one ran once: it stays
    } finally {
      pool.close();
    }
  });
});
