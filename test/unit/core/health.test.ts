import { describe, expect, test } from "bun:test";
import { verdict } from "../../../src/core/health.ts";

describe("readiness verdict", () => {
  test("pass only when every check passes; reasons of the failing ones, in order", () => {
    expect(verdict([{ name: "storage", ok: true }])).toEqual({
      status: "pass",
      checks: [{ name: "storage", status: "pass" }],
      reasons: [],
    });
    const v = verdict([
      { name: "storage", ok: false, reason: "the store cannot commit a write" },
      { name: "broker", ok: true },
      { name: "lease", ok: false },
    ]);
    expect(v.status).toBe("fail");
    expect(v.reasons).toEqual(["the store cannot commit a write", "lease is not ready"]);
    expect(v.checks[1]).toEqual({ name: "broker", status: "pass" });
  });
});
