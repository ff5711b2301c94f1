import { expect, test } from "bun:test";
import { profileFor } from "../../../src/proplet/monitor.ts";

// A start message from any manager: a task's sampling interval and history are clamped, never obeyed to a timer of
// a millisecond (what 1e-6 s, or 1e300 s overflowing, became) or an unbounded history.

test("monitoring profiles: defaults, nanoseconds, and clamps on interval and history", () => {
  expect(profileFor(undefined, false)).toEqual({ enabled: true, intervalS: 10, historySize: 100 });
  expect(profileFor({ interval: 5e9 }, true)).toEqual({ enabled: true, intervalS: 5, historySize: 500 });
  expect(profileFor({ interval: 0.000001 }, false).intervalS).toBe(1);
  expect(profileFor({ interval: 1e300 }, false).intervalS).toBe(86_400);
  expect(profileFor({ interval: 0, history_size: 1e9 }, false)).toEqual({
    enabled: true,
    intervalS: 10,
    historySize: 10_000,
  });
});
