import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { cli, ROOT, type Serve, startServe, tempDir, tokenOf } from "../helpers.ts";
import { inOrder, walkQuickStart } from "../readme.ts";

// The modules propeller carries: a first run needs no compiler. The README's quick start uses them.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const run = (args: string[]) => cli(args, { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });

test("the examples are built from their sources in examples/", () => {
  const check = Bun.spawnSync([process.execPath, join(ROOT, "scripts/examples.ts"), "--check"]);
  expect({ code: check.exitCode, err: check.stderr.toString() }).toEqual({ code: 0, err: "" });
});

test("tasks create --example runs add and hello, and spin stops", () => {
  const add = run(["tasks", "create", "add", "--example", "add", "--inputs", "10,20", "--start", "--wait"]);
  expect(add.stdout).toBe("30\n");
  const hello = run(["tasks", "create", "hello", "--example", "hello", "--inputs", "Ada", "--start", "--wait"]);
  expect(hello.stdout).toBe("Hello, Ada!\n");
  const spin = run(["tasks", "create", "spin", "--example", "spin", "--start", "--json"]);
  const id = JSON.parse(spin.stdout).id as string;
  expect(run(["tasks", "stop", id]).code).toBe(0);
  const bad = run(["tasks", "create", "x", "--example", "nope"]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('no example "nope": there are add, hello, spin');
});

test("examples list and write; the written modules run with wasm run", () => {
  const list = cli(["examples", "list"]).stdout;
  expect(list).toContain("hello");
  // Each description whole (it was cut at 60 characters, mid-flag: "`--inpu").
  expect(list).toContain("takes two integers. `--inputs 10,20` gives 30.");
  expect(list).toContain("for trying `tasks stop` (the proplet's interrupt check ends it).");
  const dir = tempDir();
  expect(cli(["examples", "write", dir]).code).toBe(0);
  expect(cli(["wasm", "run", join(dir, "add.wasm"), "--invoke", "add", "2", "3"]).stdout).toBe("5\n");
  expect(cli(["wasm", "run", join(dir, "hello.wasm"), "--", "Bob"]).stdout).toBe("Hello, Bob!\n");
});

test("the README's quick start runs as written, each command printing what its comment says", () => {
  const r = walkQuickStart(`${process.execPath} ${join(ROOT, "src/main.ts")}`, {
    PROPELLER_URL: s.url,
    PROPELLER_TOKEN: tokenOf(s.url),
  });
  expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
  expect(r.promised.length).toBeGreaterThanOrEqual(3);
  expect({ out: r.stdout, ok: inOrder(r.stdout, r.promised) }).toEqual({ out: r.stdout, ok: true });
});
