import { isTerminal } from "../../src/core/states.ts";
import type { Kind } from "./workload.ts";

// The checker: real executions (the guests' ledger) against what the manager recorded (tasks and their runs).
// Pure: run.ts gathers the inputs.

export interface LedgerEntry {
  task: string;
  run: string;
  proplet: string;
  attempt: number;
}

export interface RecordedRun {
  run_id: string;
  state: number;
  started_at: string;
}

export interface TaskView {
  id: string;
  kind: Kind | "unknown";
  /** "unknown": in the manager's list, never acknowledged to the harness (a start whose answer never came). */
  state?: number;
  runs: RecordedRun[];
}

export interface Verdict {
  tasks: number;
  lost: number;
  duplicated: number;
  hidden: number;
  cron_slots: number;
  cron_doubles: number;
  /** Task ids (and run ids) behind each non-zero count. */
  breakdown: Record<string, string[]>;
}

export function parseLedger(lines: string[]): LedgerEntry[] {
  return lines.flatMap((l) => {
    const [task, run, proplet, attempt] = l.trim().split(" ");
    return task && run ? [{ task, run, proplet: proplet ?? "-", attempt: Number(attempt ?? 1) }] : [];
  });
}

export function check(tasks: TaskView[], ledger: LedgerEntry[]): Verdict {
  const byTask = new Map<string, LedgerEntry[]>();
  for (const e of ledger) byTask.set(e.task, [...(byTask.get(e.task) ?? []), e]);
  const lost: string[] = [];
  const duplicated: string[] = [];
  const hidden: string[] = [];
  const doubles: string[] = [];
  let slots = 0;
  const known = new Map(tasks.map((t) => [t.id, t]));
  for (const t of tasks) {
    // Lost: acknowledged and never ended (the cron task is paused at the end; its runs must have ended).
    const open = t.runs.filter((r) => !isTerminal(r.state));
    const acked = t.kind !== "unknown";
    if ((acked && t.kind !== "cron" && (t.state === undefined || !isTerminal(t.state))) || open.length)
      lost.push(`${t.id} (state ${t.state}, open runs ${open.map((r) => r.run_id).join(",") || "none"})`);
    const execs = byTask.get(t.id) ?? [];
    const runIds = new Set(t.runs.map((r) => r.run_id));
    const perRun = new Map<string, number>();
    for (const e of execs) perRun.set(e.run, (perRun.get(e.run) ?? 0) + 1);
    const twice = [...perRun].filter(([, n]) => n > 1).map(([r, n]) => `${r}×${n}`);
    if (twice.length || (t.kind !== "cron" && execs.length > t.runs.length))
      duplicated.push(
        `${t.id} (${execs.length} executions, ${t.runs.length} runs${twice.length ? `; ${twice.join(" ")}` : ""})`,
      );
    for (const e of execs) if (!runIds.has(e.run)) hidden.push(`${t.id} run ${e.run || "(none)"} on ${e.proplet}`);
    if (t.kind === "cron") {
      const seconds = new Map<string, string[]>();
      for (const r of t.runs) {
        const s = r.started_at.slice(0, 19);
        seconds.set(s, [...(seconds.get(s) ?? []), r.run_id]);
      }
      slots += seconds.size;
      for (const [s, ids] of seconds) if (ids.length > 1) doubles.push(`${t.id} ${s}: ${ids.join(",")}`);
    }
  }
  // Executions of tasks the manager does not know at all.
  for (const [id, execs] of byTask)
    if (!known.has(id)) for (const e of execs) hidden.push(`${id} run ${e.run} on ${e.proplet} (task unknown)`);
  const breakdown: Record<string, string[]> = {};
  if (lost.length) breakdown.lost = lost;
  if (duplicated.length) breakdown.duplicated = duplicated;
  if (hidden.length) breakdown.hidden = hidden;
  if (doubles.length) breakdown.cron_doubles = doubles;
  return {
    tasks: tasks.filter((t) => t.kind !== "unknown").length,
    lost: lost.length,
    duplicated: duplicated.length,
    hidden: hidden.length,
    cron_slots: slots,
    cron_doubles: doubles.length,
    breakdown,
  };
}
