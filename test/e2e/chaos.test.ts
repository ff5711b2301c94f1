import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "../helpers.ts";

// Issue 26's guarantee, measured: the fault harness (scripts/chaos/run.ts) on each profile for a short while,
// with a seed each, must count zero lost, duplicated and hidden executions and zero cron doubles. The harness
// starts and kills its own processes; a non-zero count fails with its breakdown (task ids) and the harness's log.

const SECONDS = 45;

async function chaos(profile: "ha" | "single", seed: number) {
  const p = Bun.spawn(
    [process.execPath, join(ROOT, "scripts", "chaos", "run.ts")].concat([
      "--profile",
      profile,
      "--seconds",
      String(SECONDS),
      "--seed",
      String(seed),
    ]),
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const last = out.trim().split("\n").pop() ?? "";
  let line: Record<string, number | string> = {};
  try {
    line = JSON.parse(last);
  } catch {}
  console.log(last);
  return { code, line, err };
}

for (const [profile, seed] of [
  ["ha", 1],
  ["single", 2],
] as const) {
  test(`${profile} site under seeded faults for ${SECONDS} s (seed ${seed}): nothing lost, doubled or hidden`, async () => {
    const { code, line, err } = await chaos(profile, seed);
    const counts = {
      lost: line.lost,
      duplicated: line.duplicated,
      hidden: line.hidden,
      cron_doubles: line.cron_doubles,
      exit: code,
    };
    if (code !== 0) console.error(err.slice(-6000));
    expect(counts).toEqual({ lost: 0, duplicated: 0, hidden: 0, cron_doubles: 0, exit: 0 });
    // The run did what it says: faults were injected, tasks ran, the cron task fired most seconds.
    expect(line.faults as number).toBeGreaterThanOrEqual(4);
    expect(line.tasks as number).toBeGreaterThan(30);
    expect(line.cron_slots as number).toBeGreaterThan(SECONDS / 2);
  }, 240_000);
}
