import { describe, expect, test } from "bun:test";
import { int, nearest, seconds, UsageError } from "../../../src/cli/args.ts";

// Flag values: refused with the flag named, never silently replaced by a default.

describe("flag values", () => {
  test("seconds take 10, 0.5 and 10s, and refuse the rest", () => {
    expect(seconds("--x", "10", 1)).toBe(10);
    expect(seconds("--x", "0.5", 1)).toBe(0.5);
    expect(seconds("--x", "10s", 1)).toBe(10);
    expect(seconds("--x", undefined, 7)).toBe(7);
    for (const bad of ["0", "-1", "ten", "10m"]) {
      expect(() => seconds("--x", bad, 1)).toThrow(UsageError);
    }
    expect(() => seconds("--liveliness-interval", "soon", 1)).toThrow(
      '--liveliness-interval must be a positive number of seconds, got "soon"',
    );
  });

  test("integers stay within their range", () => {
    expect(int("port", "7070")).toBe(7070);
    expect(() => int("port", "70000")).toThrow("--port must be an integer between 0 and 65535");
    expect(() => int("n", "1.5", 1, 10)).toThrow(UsageError);
  });
});

describe("nearest", () => {
  test("a flag typed short names the one it starts (--proplet: --proplet-id); an ambiguous or tiny start none", () => {
    const flags = ["--file", "--proplet-id", "--priority", "--start", "--wait", "--wait-timeout"];
    expect(nearest("--proplet", flags)).toBe("--proplet-id");
    expect(nearest("--wai", flags)).toBe("--wait"); // within edit distance: that rule comes first
    expect(nearest("--pr", flags)).toBeUndefined();
    expect(nearest("--wait-t", ["--wait-timeout", "--wait-tries"])).toBeUndefined();
    expect(nearest("--fiel", flags)).toBe("--file");
  });
});
