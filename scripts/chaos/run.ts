// The fault harness of issue 26 (a script, not a test): builds a site, drives a workload, injects faults at
// seeded-random moments, quiesces, and compares the guests' own ledger of executions with what the manager
// recorded. One JSON line on stdout: {seed, seconds, faults, tasks, lost, duplicated, hidden, cron_slots,
// cron_doubles}; the task ids behind any non-zero on stderr; exit 1 when any is non-zero.
//   bun scripts/chaos/run.ts --profile ha|single --seconds N --seed S [--proplets 3] [--keep]
// Profiles: "ha" is mosquitto + PostgreSQL + two managers; "single" is one serve on SQLite with its embedded
// broker; both with standalone proplets, each behind a stalling link. docs/ARCHITECTURE.md, "Exactly once under
// faults", says what is counted and why.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isTerminal } from "../../src/core/states.ts";
import { scriptArgs } from "../args.ts";
import { check, parseLedger, type RecordedRun, type TaskView } from "./check.ts";
import { apply, schedule } from "./faults.ts";
import { mulberry32 } from "./prng.ts";
import { atExit } from "./procs.ts";
import { type Profile, Site } from "./site.ts";
import { type Kind, Workload } from "./workload.ts";

const { values } = scriptArgs(import.meta.path, {
  options: {
    profile: { type: "string", default: "ha" },
    seconds: { type: "string", default: "60" },
    seed: { type: "string", default: "1" },
    proplets: { type: "string", default: "3" },
    keep: { type: "boolean", default: false },
    "settle-s": { type: "string", default: "120" },
  },
});
const profile = values.profile as Profile;
if (profile !== "ha" && profile !== "single") throw new Error(`--profile: "ha" or "single", not ${values.profile}`);
const seconds = Number(values.seconds);
const seed = Number(values.seed);
const proplets = Number(values.proplets);
const settleS = Number(values["settle-s"]);
for (const [k, v] of Object.entries({ seconds, seed, proplets, "settle-s": settleS }))
  if (!Number.isInteger(v) || v < (k === "seed" ? 0 : 1)) throw new Error(`--${k}: a whole number, got ${v}`);

const say = (s: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${s}`);
const dir = mkdtempSync(join(tmpdir(), `propeller-chaos-${profile}-`));
if (!values.keep) atExit(() => rmSync(dir, { recursive: true, force: true }));
say(`${profile} site in ${dir}, seed ${seed}, ${seconds} s`);

const site = new Site(profile, dir, proplets);
await site.build();
say("site up");

const faults = schedule(mulberry32(seed), profile, seconds, proplets);
const work = new Workload(site, seed);
const t0 = Date.now();
site.supervise();
work.begin();
let applied = 0;
for (const f of faults) {
  if (Date.now() > t0 + seconds * 1000) break; // behind the schedule (restarts take time): the run ends on time
  const wait = t0 + f.at * 1000 - Date.now();
  if (wait > 0) await Bun.sleep(wait);
  try {
    say(`fault ${applied + 1}/${faults.length}: ${await apply(site, f)} (hold ${f.holdMs} ms)`);
    applied++;
  } catch (e) {
    say(`fault ${f.kind} failed: ${e}`);
  }
}
const rest = t0 + seconds * 1000 - Date.now();
if (rest > 0) await Bun.sleep(rest);

// Quiesce: no more faults or work; the cron task paused; then every acknowledged task must end.
say("quiescing");
await work.end();
const listAll = async () => {
  const out: { id: string; state: number }[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await site.api("GET", `/tasks?offset=${offset}&limit=1000`);
    out.push(...page.body.tasks);
    if (page.body.tasks.length < 1000) return out;
  }
};
const settleEnd = Date.now() + settleS * 1000;
for (;;) {
  const states = new Map((await listAll()).map((t) => [t.id, t.state]));
  const open = [...work.acknowledged].filter(([id, k]) => k !== "cron" && !isTerminal(states.get(id) ?? -1));
  if (!open.length || Date.now() > settleEnd) break;
  await Bun.sleep(1000);
}
await Bun.sleep(3000); // write-backs of guests that ended just now

const ledger = parseLedger(
  readdirSync(site.ledger).map((f) => {
    try {
      return readFileSync(join(site.ledger, f), "utf8");
    } catch {
      return "";
    }
  }),
);
const all = await listAll();
const ids = new Set([...all.map((t) => t.id), ...work.acknowledged.keys(), ...ledger.map((e) => e.task)]);
const views: TaskView[] = [];
for (const id of ids) {
  const t = await site.api("GET", `/tasks/${encodeURIComponent(id)}`);
  if (t.status === 404) continue; // an execution of it is hidden; an acknowledged one is lost
  const runs: RecordedRun[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await site.api("GET", `/tasks/${encodeURIComponent(id)}/runs?offset=${offset}&limit=1000`);
    runs.push(...page.body.runs);
    if (page.body.runs.length < 1000) break;
  }
  views.push({ id, kind: (work.acknowledged.get(id) ?? "unknown") as Kind | "unknown", state: t.body.state, runs });
}
for (const [id, kind] of work.acknowledged)
  if (!views.some((v) => v.id === id)) views.push({ id, kind, state: undefined, runs: [] });

const v = check(views, ledger);
const byStatus: Record<string, number> = {};
for (const t of views)
  if (t.kind !== "unknown" && t.kind !== "cron") byStatus[t.state ?? -1] = (byStatus[t.state ?? -1] ?? 0) + 1;
say(
  `${ledger.length} executions in the ledger; acknowledged tasks by final state ${JSON.stringify(byStatus)}; ${work.refused} refused requests`,
);
if (site.exits.length) say(`exited on their own and restarted: ${site.exits.join("; ")}`);
for (const [k, list] of Object.entries(v.breakdown)) {
  say(`${k}: ${list.length}`);
  for (const l of list.slice(0, 50)) console.error(`  ${l}`);
}
const line = {
  seed,
  seconds,
  faults: applied,
  tasks: v.tasks,
  lost: v.lost,
  duplicated: v.duplicated,
  hidden: v.hidden,
  cron_slots: v.cron_slots,
  cron_doubles: v.cron_doubles,
};
await site.close();
console.log(JSON.stringify({ profile, ...line }));
if (Object.keys(v.breakdown).length && values.keep) say(`logs kept in ${dir}`);
process.exit(v.lost || v.duplicated || v.hidden || v.cron_doubles ? 1 : 0);
