import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_TABLE_ELEMENTS } from "../../src/core/wasm-caps.ts";
import { runTask, type Serve, startServe, tempDir } from "../helpers.ts";
import { rssMiB } from "../proxy-site.ts";

// A guest's memory cap bounded each linear memory, not the task (a fresh-eyes attacker's finding): with several
// memories (multi-memory) each got the whole cap, 40 of them 2.5 GB of serve's memory under a 64 MiB cap; and
// tables, which grow outside linear memory, had no bound at all (five tables of 10 million elements, 3.4 GB).
// The modules are written here as text and built with wabt's wat2wasm, as the other fixtures.

const WAT2WASM = join(import.meta.dir, "..", "..", "node_modules", ".bin", "wat2wasm");
let s: Serve;

function build(name: string, wat: string): string {
  const dir = tempDir("guest-caps-");
  const src = join(dir, `${name}.wat`);
  const out = join(dir, `${name}.wasm`);
  Bun.write(src, wat);
  const r = Bun.spawnSync([WAT2WASM, "--enable-all", src, "-o", out]);
  if (!r.success) throw new Error(`wat2wasm ${name}: ${r.stderr}`);
  return readFileSync(out).toString("base64");
}

/** k funcref tables; run(n) grows each by n, returning the sum of sizes, or -1000 - i when table i would not grow. */
const tables = (k: number) => {
  const out = ["(module"];
  for (let i = 0; i < k; i++) out.push(`  (table $t${i} 0 funcref)`);
  out.push('  (func (export "run") (param $n i32) (result i32) (local $s i32)');
  for (let i = 0; i < k; i++) {
    out.push(
      `    (if (i32.lt_s (table.grow $t${i} (ref.null func) (local.get $n)) (i32.const 0)) (then (return (i32.sub (i32.const -1000) (i32.const ${i})))))`,
      `    (local.set $s (i32.add (local.get $s) (table.size $t${i})))`,
    );
  }
  out.push("    (local.get $s)))");
  return out.join("\n");
};

beforeAll(async () => {
  s = await startServe();
}, 30_000);
afterAll(async () => {
  await s?.kill("SIGKILL");
});

test("tables: a grow past the module's share of the table cap fails inside the guest; serve's memory stays put", async () => {
  const file = build("tables", tables(5));
  const before = rssMiB(s.proc.pid);
  const big = await runTask(s.url, { name: "run", file, inputs: [10_000_000] }, 30_000);
  expect({ state: big.state, results: big.results }).toEqual({ state: 3, results: "-1000" });
  const share = Math.floor(MAX_TABLE_ELEMENTS / 5);
  const fits = await runTask(s.url, { name: "run", file, inputs: [share] }, 30_000);
  expect({ state: fits.state, results: fits.results }).toEqual({ state: 3, results: String(5 * share) });
  expect(rssMiB(s.proc.pid) - before).toBeLessThan(300);
}, 60_000);

test("a module with several memories is refused, naming why; one memory runs as before", async () => {
  const mems = (k: number) =>
    `(module ${Array.from({ length: k }, (_, i) => `(memory $m${i} 1)`).join(" ")} (func (export "run") (result i32) (i32.const 7)))`;
  const many = await runTask(s.url, { name: "run", file: build("mm", mems(4)), max_memory_mb: 64 }, 30_000);
  expect(many.state).toBe(4);
  expect(many.error).toContain("the module defines 4 memories: this runtime runs modules with one");
  const one = await runTask(s.url, { name: "run", file: build("m1", mems(1)), max_memory_mb: 64 }, 30_000);
  expect({ state: one.state, results: one.results }).toEqual({ state: 3, results: "7" });
}, 60_000);
