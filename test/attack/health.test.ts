import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Serve, startServe } from "../helpers.ts";

// The probes answer anyone (no token) and /readyz commits a write: a flood of them must not become a flood of
// writes. Answers are shared for a second (src/cli/readiness.ts), so 5,000 probes cost a few commits, which the
// WAL's size shows (each commit appends at least one page to it: 1 KiB, or 4 KiB in a store made before).

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

test("5,000 unauthenticated /readyz at once: all answered, a few commits, serve healthy", async () => {
  const wal = join(s.dataDir, "propeller.db-wal");
  const before = existsSync(wal) ? statSync(wal).size : 0;
  const t0 = performance.now();
  let ok = 0;
  for (let round = 0; round < 10; round++) {
    const rs = await Promise.all(Array.from({ length: 500 }, () => fetch(`${s.url}/readyz`)));
    for (const r of rs) if (r.status === 200 && ((await r.json()) as { status: string }).status === "pass") ok++;
  }
  const seconds = (performance.now() - t0) / 1000;
  const grown = (existsSync(wal) ? statSync(wal).size : 0) - before;
  expect(ok).toBe(5000);
  // One commit per second of flood, a few pages each. Without the shared answer the WAL grew by 210 KB here (group
  // commit folds the probes of one event-loop turn into one commit, yet every turn commits).
  expect(grown).toBeLessThan((Math.ceil(seconds) + 2) * 4 * 4096 + 65536);
  expect((await fetch(`${s.url}/livez`)).status).toBe(200);
  console.log(JSON.stringify({ probes: ok, seconds: seconds.toFixed(2), walGrowthBytes: grown }));
});
