import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { assemble, runTask, type Serve, startServe } from "../helpers.ts";
import { rssKb } from "../sandbox-site.ts";

// A guest's output costs serve memory in bytes, never per call (src/proplet/runtime/byte-buffer.ts): every write
// was kept as a chunk of its own, so a ~100-byte guest looping on empty fd_write calls took serve to 2 GiB and the
// OOM killer, and millions of one-byte writes, within every limit, left gigabytes behind. One call may name at
// most IOV_MAX iovecs (src/proplet/runtime/wasi-p1-cap.ts): the WASI shim made an object per iovec, and one call
// naming 8 million took 3 GiB in a host call no interrupt check could stop. Measured here before these bounds: the
// one-byte writes +590 MiB, the empty writes +1,026 MiB (one call of 8 million iovecs: 344 MiB → 3.3 GiB); after:
// +66, -46 and -1 MiB.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const FD_WRITE = `(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))`;
const task = async (name: string, wat: string, extra: Record<string, unknown> = {}) => ({
  name,
  file: Buffer.from(await assemble(wat)).toString("base64"),
  inputs: [],
  ...extra,
});
const grewMib = async (run: () => Promise<unknown>) => {
  const before = rssKb(s.proc.pid);
  await run();
  return (rssKb(s.proc.pid) - before) / 1024;
};

describe("a guest's output", () => {
  test("one fd_write may name at most 1,024 iovecs: more is EINVAL, and serve's memory stays where it was", async () => {
    const call = (n: number) =>
      `(module ${FD_WRITE} (memory (export "memory") 1024)
         (func (export "main") (result i32) (call $fd_write (i32.const 1) (i32.const 0) (i32.const ${n}) (i32.const 0))))`;
    expect(await runTask(s.url, await task("main", call(1024)))).toMatchObject({ status: "Completed", results: "0" });
    expect(await runTask(s.url, await task("main", call(1025)))).toMatchObject({ status: "Completed", results: "28" });
    // Every iovec of 64 MiB of zeroed memory in one call.
    const grew = await grewMib(async () =>
      expect(await runTask(s.url, await task("main", call(8 * 1024 * 1024 - 1)), 30_000)).toMatchObject({
        status: "Completed",
        results: "28",
      }),
    );
    console.log(`serve grew ${grew.toFixed(0)} MiB`);
    expect(grew).toBeLessThan(200);
  }, 60_000);

  test("two million one-byte writes to each stream: the result holds them, and serve's memory stays bounded", async () => {
    const wat = `(module ${FD_WRITE} (memory (export "memory") 1)
      (data (i32.const 0) "\\20\\00\\00\\00\\01\\00\\00\\00") (data (i32.const 32) "A")
      (func (export "_start") (local $i i32) (local $fd i32)
        (local.set $fd (i32.const 1))
        (loop $s
          (local.set $i (i32.const 0))
          (loop $l
            (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 2097152))))
          (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
          (br_if $s (i32.le_u (local.get $fd) (i32.const 2))))))`;
    let t: any;
    const grew = await grewMib(async () => {
      t = await runTask(s.url, await task("bytes", wat), 60_000);
    });
    console.log(`serve grew ${grew.toFixed(0)} MiB`);
    expect(t.status).toBe("Completed");
    expect(String(t.results).length).toBe(2 * 1024 * 1024);
    expect(grew).toBeLessThan(200);
  }, 90_000);

  test("a guest looping on empty writes until its timeout ends timed out, and serve's memory stays bounded", async () => {
    const wat = `(module ${FD_WRITE} (memory (export "memory") 1)
      (func (export "_start") (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))) (br $l))))`;
    let t: any;
    const grew = await grewMib(async () => {
      t = await runTask(s.url, await task("empty", wat, { timeout_s: 8 }), 30_000);
    });
    console.log(`serve grew ${grew.toFixed(0)} MiB`);
    expect(t).toMatchObject({ status: "Failed", error: "task timed out after 8s" });
    expect(grew).toBeLessThan(200);
  }, 60_000);

  test("a guest writing from above 2 GiB of its memory is heard (a pointer there is a negative i32 to the host)", async () => {
    // The iovec and its bytes at 2 GiB: past i32's sign bit, where a host reading pointers as signed numbers trapped.
    const wat = `(module ${FD_WRITE} (memory (export "memory") 32770)
      (data (i32.const 0x80000000) "\\10\\00\\00\\80\\05\\00\\00\\00") (data (i32.const 0x80000010) "high!")
      (func (export "_start")
        (if (call $fd_write (i32.const 1) (i32.const 0x80000000) (i32.const 1) (i32.const 0x80000020))
          (then unreachable))
        (if (i32.ne (i32.load (i32.const 0x80000020)) (i32.const 5)) (then unreachable))))`;
    const big = await startServe({ env: { PROPLET_MAX_TASK_MEMORY_MB: "2100" } });
    try {
      const t = await runTask(big.url, await task("high", wat, { max_memory_mb: 2100 }), 30_000);
      expect(t).toMatchObject({ status: "Completed", results: "high!" });
      // Over the cap, the refusal says how much it needs (a size past 2 GiB was said as "-2048 MiB").
      const over = await runTask(big.url, await task("high", wat, { max_memory_mb: 2048 }), 30_000);
      expect(over).toMatchObject({
        status: "Failed",
        error: "the module needs 2049 MiB of memory at start: over the cap of 2048 MiB",
      });
    } finally {
      await big.kill("SIGKILL");
    }
  }, 60_000);
});
