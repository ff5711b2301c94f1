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

// A number flag that is not one ran before: `burst.ts --tasks abc` a NaN-task burst, `fleet.ts --proplets 0` and
// `dispatch.ts --concurrency 0` waited for clients that never came, `wear.ts --rates 1,x` a NaN rate.
const runScript = (script: string, ...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "scripts/bench", script), ...args], { cwd: ROOT });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

test("--help prints a usage that goes on over more lines whole (dispatch.ts's flags after --rounds)", () => {
  const r = runScript("dispatch.ts", "--help");
  expect(r.code).toBe(0);
  expect(r.out).toContain("[--rounds 3]\n      [--bin dist/propeller]");
  expect(r.out).toContain("[--no-floor]\n");
});

test("a number flag that is no number, or too small, is named with its bound, exit 2, before anything starts", () => {
  for (const [script, args, message] of [
    ["fleet.ts", ["--proplets", "0"], 'error: --proplets must be a number at least 1, got "0"\nusage:'],
    ["fleet.ts", ["--seconds", "abc"], 'error: --seconds must be a number greater than 0, got "abc"\nusage:'],
    ["burst.ts", ["--tasks", ""], 'error: --tasks must be a number at least 1, got ""\nusage:'],
    ["wear.ts", ["--rates", "1,x"], 'error: --rates must be a comma list of numbers greater than 0, got "1,x"\nusage:'],
  ] as const) {
    const r = runScript(script, ...args);
    expect(r.code).toBe(2);
    expect(r.err).toStartWith(message);
    expect(r.err).not.toContain("    at ");
  }
});

test("a --bin that is not there is named, not a stack trace", () => {
  const r = runScript("burst.ts", "--bin", "/nonexistent/propeller", "--tasks", "10");
  expect(r.code).toBe(2);
  expect(r.err).toStartWith("error: --bin /nonexistent/propeller: no such file (npm run build writes dist/propeller)");
});
