import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "../../helpers.ts";

// A script's flags as an operator types them (scripts/args.ts): --help prints the usage in its header, a mistyped
// flag one line and that usage, exit 2, not a stack trace.

const run = (...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "scripts/bench/fleet.ts"), ...args], { cwd: ROOT });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

test("--help prints the script's usage line and exits 0", () => {
  const r = run("--help");
  expect(r.code).toBe(0);
  expect(r.out).toContain("usage:\n  bun scripts/bench/fleet.ts [--proplets 1000]");
});

test("a mistyped flag is named with the usage, exit 2, no stack trace", () => {
  const r = run("--proplet", "10");
  expect(r.code).toBe(2);
  expect(r.err).toStartWith("error: Unknown option '--proplet'\nusage:\n  bun scripts/bench/fleet.ts");
  expect(r.err).not.toContain("    at ");
});
