// Cron benchmark: 10,000 recurring seconds-level schedules in the real manager service (SQLite storage in a temp
// dir, the one-timer CronRunner, next_run persisted on every firing). Schedule i fires at second i % 60 of every
// minute, so ~167 fire together each second. Drift = when the firing ran minus when it was due.
// No proplet is connected: a firing queues its task, and while it waits later firings are skipped
// (overlap_policy skip), so this measures the scheduler, not task execution.
// Prints its figures as one JSON object on the last stdout line.
//
//   bun scripts/bench/cron.ts [--schedules 10000] [--seconds 65]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskCreate } from "../../src/core/task.ts";
import { MODULES } from "../../src/examples/modules.ts";
import { setLogLevel } from "../../src/log.ts";
import { Identities } from "../../src/manager/identities.ts";
import { Manager } from "../../src/manager/manager.ts";
import { openSqlite } from "../../src/storage/sqlite/index.ts";
import { scriptArgs } from "../args.ts";

const { values: opt } = scriptArgs(import.meta.path, {
  options: { schedules: { type: "string", default: "10000" }, seconds: { type: "string", default: "65" } },
});
const N = Number(opt.schedules);
const SECONDS = Number(opt.seconds);
setLogLevel("warn");

const dir = mkdtempSync(join(tmpdir(), "propeller-cron-"));
const store = openSqlite(join(dir, "propeller.db"));
const bus = { start: async () => {}, stop: async () => {}, invoke: async () => {} }; // nothing is dispatched: no proplet is alive
const drift: number[] = [];
const manager = new Manager(store, bus, new Identities(store), {
  livelinessThresholdMs: 30_000,
  scheduler: "round-robin",
  observeFiring: (_id, dueAt) => drift.push(Date.now() - dueAt),
});
const file = MODULES.add.wasm; // the example module propeller carries: no build needed

process.stderr.write(`creating ${N} schedules…\n`);
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  await manager.tasks.create(
    TaskCreate.parse({ name: "add", file, inputs: [1, 2], schedule: `${i % 60} * * * * *`, is_recurring: true }),
  );
}
process.stderr.write(`created in ${((performance.now() - t0) / 1000).toFixed(1)} s; running for ${SECONDS} s…\n`);
const cpu0 = process.cpuUsage();
await Bun.sleep(SECONDS * 1000);
const cpu = process.cpuUsage(cpu0);
manager.schedules.stop();
store.close();
rmSync(dir, { recursive: true, force: true });

drift.sort((a, b) => a - b);
const pct = (p: number) => drift[Math.min(drift.length - 1, Math.floor((p / 100) * drift.length))] ?? NaN;
console.log(
  JSON.stringify({
    schedules: N,
    seconds: SECONDS,
    firings: drift.length,
    drift_p50_ms: pct(50),
    drift_p99_ms: pct(99),
    drift_max_ms: drift.at(-1) ?? NaN,
    cpu_percent: +(((cpu.user + cpu.system) / 1e6 / SECONDS) * 100).toFixed(1),
  }),
);
