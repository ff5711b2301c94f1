import { isTerminal, TaskState } from "../core/states.ts";
import type { TaskView } from "../core/task.ts";
import { ZERO_TIME } from "../core/time.ts";
import { ApiError, api, type Conn, sse, Unreachable } from "./client.ts";
import { printJson, printRecord, terminalSafe } from "./output.ts";

// What the task commands print: one task, a finished task's outcome, a task's output (`tasks logs`).

/** Every field of a task, times with how long ago (or until) they are, and "never" for one never set. */
export function show(t: TaskView, json: boolean): void {
  if (json) {
    printJson(t);
    return;
  }
  const { status, state, start_time, finish_time, created_at, updated_at, next_run, ...rest } = t;
  const times = { created_at, updated_at, start_time, finish_time, ...(t.schedule ? { next_run } : {}) };
  printRecord({
    id: t.id,
    name: t.name,
    status: `${status} (${state})`,
    ...Object.fromEntries(Object.entries(rest).filter(([k, v]) => k !== "id" && k !== "name" && v !== undefined)),
    ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k, when(v)])),
  });
}

/** `2026-11-28T10:00:00.000Z (3 min ago)`, or "never" for upstream's zero time. */
export function when(iso: string | undefined, now = Date.now()): string {
  if (!iso || iso === ZERO_TIME) return "never";
  const ms = Date.parse(iso) - now;
  const abs = Math.abs(ms);
  const span =
    abs < 60_000
      ? `${Math.round(abs / 1000)} s`
      : abs < 3_600_000
        ? `${Math.round(abs / 60_000)} min`
        : abs < 86_400_000
          ? `${Math.round(abs / 3_600_000)} h`
          : `${Math.round(abs / 86_400_000)} d`;
  return `${iso} (${ms <= 0 ? `${span} ago` : `in ${span}`})`;
}

/** How long a wait goes on while serve does not answer (a restart takes seconds; a serve gone for good, not). */
const AWAY_S = 20;

/** How long `logs --follow` waits for the task's end once its stream was cut (serve restarting). */
const FOLLOW_AFTER_CUT_S = 60;

export async function waitFor(conn: Conn, id: string, timeoutS: number): Promise<TaskView> {
  const deadline = Date.now() + timeoutS * 1000;
  // On a terminal, the id is said before waiting: a Ctrl-C or a lost serve does not lose the task (scripts, whose
  // stderr is no terminal, keep it clean; a failed wait names the id anyway).
  const tty = process.stderr.isTTY;
  if (tty) process.stderr.write(`task ${id}: waiting for it to finish\n`);
  // Why a task has not started (no proplet alive, every one cordoned, its proplet gone) is known to serve: it is
  // said while waiting (on a terminal, once it has waited a second, and again when it changes) and in the timeout's
  // error. Before, a task no proplet could take waited in silence and timed out saying only "still Scheduled".
  const since = Date.now();
  let said: string | undefined;
  /** Since when serve has not answered, while it does not. */
  let away: number | undefined;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    let t: TaskView;
    try {
      t = await api<TaskView>(conn, "GET", `/tasks/${encodeURIComponent(id)}`);
      away = undefined;
    } catch (e) {
      // A serve restarting (an upgrade, `systemctl restart`) is away for a few seconds: the wait goes on until its
      // own deadline, saying so once. Any other refusal ends it.
      if (
        e instanceof Unreachable &&
        Date.now() < deadline &&
        (away === undefined || Date.now() - away < AWAY_S * 1000)
      ) {
        if (away === undefined) process.stderr.write(`${e.message}: still waiting for task ${id} (up to ${AWAY_S}s)\n`);
        away ??= Date.now();
        await Bun.sleep(500);
        continue;
      }
      throw new ApiError(
        `${e instanceof Error ? e.message : e} (while waiting for task ${id}: propeller tasks get ${id})`,
      );
    }
    // A latent task stays Running, deployed, until it is stopped: deployed is what a wait can see.
    if (isTerminal(t.state) || (t.latent && t.state === TaskState.Running)) return t;
    const why = (t as TaskView & { waiting_reason?: string }).waiting_reason;
    if (tty && why && why !== said && Date.now() - since >= 1000) {
      process.stderr.write(`task ${id}: not started: ${why}\n`);
      said = why;
    }
    if (Date.now() > deadline) {
      throw new Error(`task ${id} still ${t.status} after ${timeoutS}s${why ? `: not started: ${why}` : ""}`);
    }
    await Bun.sleep(delay);
  }
}

/** A task's results as printed: a string as it is (one newline at its end), anything else as JSON. */
export const resultLine = (results: unknown): string =>
  `${typeof results === "string" ? results.replace(/\n$/, "") : JSON.stringify(results)}\n`;

/** Prints a finished task's outcome: the result on stdout, or the error on stderr with exit code 1. */
export function report(t: TaskView, json: boolean): void {
  if (json) printJson(t);
  else if (t.state === TaskState.Completed) process.stdout.write(resultLine(t.results));
  if (t.latent && t.state === TaskState.Running) {
    if (!json) process.stderr.write(`task ${t.id} deployed (latent): call it with propeller tasks invoke ${t.id}\n`);
  } else if (t.state !== TaskState.Completed) {
    // A guest's error: shown escaped, as every command shows it (output.ts terminalSafe).
    process.stderr.write(`task ${t.id} ${t.status}${t.error ? `: ${terminalSafe(t.error)}` : ""}\n`);
    process.exitCode = 1;
  }
}

interface Chunk {
  stream: "stdout" | "stderr";
  data: string;
}
interface Ending {
  state: number;
  status: string;
  error?: string;
}

/**
 * `tasks logs`: the kept output, or with follow the stream until the task ends. A task that streamed nothing and
 * has ended shows its result, which is where a short task's output is. Exits 1 when the task did not complete.
 */
export async function logs(conn: Conn & { json: boolean }, id: string, follow: boolean): Promise<void> {
  const print = (c: Chunk) => (c.stream === "stderr" ? process.stderr : process.stdout).write(c.data);
  let printed = false;
  let end: Ending | undefined;
  if (follow) {
    try {
      for await (const e of sse(conn, `/tasks/${encodeURIComponent(id)}/logs?follow=true`)) {
        if (conn.json) process.stdout.write(`${JSON.stringify({ event: e.event, ...JSON.parse(e.data) })}\n`);
        if (e.event === "output") {
          if (!conn.json) print(JSON.parse(e.data) as Chunk);
          printed = true;
        } else if (e.event === "end") end = JSON.parse(e.data) as Ending;
        // serve ended the stream early: its token was revoked or expired, or the session signed out.
        else if (e.event === "closed") throw new ApiError(`the log stream was closed: ${JSON.parse(e.data).reason}`);
      }
    } catch (e) {
      // The stream cut by serve going away (a restart): the task's end still decides the exit, so it is waited
      // for (its output meanwhile is not streamed again). A refusal is an error as before.
      if (e instanceof ApiError && !(e instanceof Unreachable)) throw e;
      process.stderr.write(
        `the log stream was cut (${e instanceof Error ? e.message : e}): waiting for task ${id} to end\n`,
      );
      end = await waitFor(conn, id, FOLLOW_AFTER_CUT_S);
    }
  } else {
    const r = await api<Ending & { chunks: Chunk[] }>(conn, "GET", `/tasks/${encodeURIComponent(id)}/logs`);
    if (conn.json) return printJson(r);
    for (const c of r.chunks) print(c);
    printed = r.chunks.length > 0;
    if (isTerminal(r.state)) end = r;
    // Nothing at all, exit 0, read as "the task wrote nothing": say it has not got that far (on stderr, so a
    // script reading the output still gets only the output).
    else if (!printed && !conn.json) {
      const next =
        r.state === TaskState.Pending || r.state === TaskState.Scheduled ? "not started yet" : "no output yet";
      process.stderr.write(`task ${id} is ${r.status}: ${next} (propeller tasks logs ${id} --follow waits for it)\n`);
    }
  }
  if (!end || conn.json) return;
  if (!printed) {
    const { results } = await api<{ results: unknown }>(conn, "GET", `/tasks/${encodeURIComponent(id)}/results`);
    if (typeof results === "string" && results) process.stdout.write(results.endsWith("\n") ? results : `${results}\n`);
  }
  if (end.state !== TaskState.Completed) {
    throw new ApiError(`task ${id} ended ${end.status}${end.error ? `: ${end.error}` : ""}`);
  }
}
