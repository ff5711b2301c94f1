import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { cpuTicks, statFields } from "../../../src/core/procstat.ts";

describe("/proc stat", () => {
  test("fields are read after the command name, even one holding spaces and parentheses", () => {
    const line = "4242 (evil) (name x) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 12345 1000 25 0";
    const f = statFields(line);
    expect(f[0]).toBe("S");
    expect(cpuTicks(f)).toBe(12);
    expect(f[19]).toBe("12345");
    expect(f[21]).toBe("25");
  });

  test("this process's own line reads as running or sleeping, with a start time", () => {
    const f = statFields(readFileSync("/proc/self/stat", "utf8"));
    expect(["R", "S"]).toContain(f[0]!);
    expect(Number(f[19])).toBeGreaterThan(0);
  });
});
