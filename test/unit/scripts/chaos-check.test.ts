import { expect, test } from "bun:test";
import { check, parseLedger, type TaskView } from "../../../scripts/chaos/check.ts";
import { schedule } from "../../../scripts/chaos/faults.ts";
import { mulberry32 } from "../../../scripts/chaos/prng.ts";

// The fault harness's checker and schedule: each count catches its case, and a seed replays its schedule.

const run = (run_id: string, state = 3, started_at = "2026-01-01T00:00:00.100Z") => ({ run_id, state, started_at });

test("a clean history counts zero", () => {
  const tasks: TaskView[] = [
    { id: "a", kind: "oneshot", state: 3, runs: [run("r1")] },
    // Killed mid-run and retried: two runs, the first never wrote its line.
    { id: "b", kind: "retry", state: 3, runs: [run("r2", 4), run("r3")] },
  ];
  const v = check(tasks, parseLedger(["a r1 p1 1\n", "b r3 p2 2\n"]));
  expect(v).toMatchObject({ tasks: 2, lost: 0, duplicated: 0, hidden: 0, cron_doubles: 0 });
});

test("issue 26's take-over: an execution with no run is hidden, and the task duplicated", () => {
  const tasks: TaskView[] = [{ id: "a", kind: "oneshot", state: 3, runs: [run("r2")] }];
  const v = check(tasks, parseLedger(["a r1 p1 1", "a r2 p1 1"]));
  expect(v).toMatchObject({ duplicated: 1, hidden: 1, lost: 0 });
  expect(v.breakdown.hidden).toEqual(["a run r1 on p1"]);
});

test("one run executed twice is duplicated; an acknowledged task that never ended is lost", () => {
  const tasks: TaskView[] = [
    { id: "a", kind: "oneshot", state: 3, runs: [run("r1"), run("r0", 4)] },
    { id: "b", kind: "oneshot", state: 2, runs: [run("r5", 2)] },
    { id: "c", kind: "daemon", state: undefined, runs: [] },
  ];
  const v = check(tasks, parseLedger(["a r1 p1 1", "a r1 p2 1"]));
  expect(v).toMatchObject({ duplicated: 1, lost: 2, hidden: 0 });
});

test("a cron slot fired twice is a double; an execution of an unknown task is hidden", () => {
  const tasks: TaskView[] = [
    {
      id: "cron",
      kind: "cron",
      state: 3,
      runs: [
        run("c1", 3, "2026-01-01T00:00:01.010Z"),
        run("c2", 3, "2026-01-01T00:00:01.900Z"),
        run("c3", 3, "2026-01-01T00:00:02.010Z"),
      ],
    },
  ];
  const v = check(tasks, parseLedger(["cron c1 p1 1", "cron c2 p1 1", "cron c3 p2 1", "ghost g1 p1 1"]));
  expect(v).toMatchObject({ cron_slots: 2, cron_doubles: 1, hidden: 1, duplicated: 0 });
});

test("the same seed gives the same fault schedule; another seed another", () => {
  const a = schedule(mulberry32(7), "ha", 600, 3);
  expect(schedule(mulberry32(7), "ha", 600, 3)).toEqual(a);
  expect(schedule(mulberry32(8), "ha", 600, 3)).not.toEqual(a);
  expect(a[0]!.kind).toBe("kill9-manager");
  expect(new Set(a.map((f) => f.kind)).size).toBe(7);
  expect(schedule(mulberry32(7), "single", 600, 3).some((f) => f.kind === "restart-broker")).toBe(false);
});
