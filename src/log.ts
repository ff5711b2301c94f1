import { type ConsolaInstance, type ConsolaReporter, createConsola, LogLevels, type LogType } from "consola";
import { escapeCodePoint, REORDERING } from "./core/reorder.ts";

// One logger for every subcommand. Logs go to stderr so a CLI's stdout stays clean for --json output.
// No throttle: consola folds a line repeated within a second into "repeated N times", comparing the arguments as
// JSON, which does not see the fields (a symbol key): a busy proplet's lines for different tasks were swallowed.
export const log = createConsola({
  level: LogLevels.info,
  stdout: process.stderr,
  stderr: process.stderr,
  throttle: 0,
});

// withTag() copies the level at creation, so tagged loggers are tracked to follow --log-level.
const tagged: ConsolaInstance[] = [];

export function tag(name: string): ConsolaInstance {
  const l = log.withTag(name);
  l.setReporters(log.options.reporters);
  tagged.push(l);
  return l;
}

/** What a log line is about, as fields of their own: ids stay out of the message, so collectors can filter. */
export interface Fields {
  task_id?: string;
  run_id?: string;
  proplet_id?: string;
  [key: string]: string | number | boolean | undefined;
}

const FIELDS = Symbol("fields");
type Marked = { [FIELDS]: Fields };

/** The last argument of a log call: `log.warn("task failed: …", fields({ task_id, run_id }))`. */
export function fields(f: Fields): Marked {
  return { [FIELDS]: f };
}

const isMarked = (a: unknown): a is Marked => typeof a === "object" && a !== null && FIELDS in a;

/**
 * A message is one line of text: ids and names in it may come from peers (a proplet's task id, a run id), so its
 * control characters are shown escaped (`\n`, `\x1b`) and cannot forge another line or reach a terminal.
 */
const CONTROL = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${REORDERING}]`, "g");
const escapeControl = (c: string) =>
  c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : escapeCodePoint(c);
const oneLine = (a: unknown) => (typeof a === "string" ? a.replace(CONTROL, escapeControl) : a);

/** The fields of a call (undefined values left out) and its other arguments. */
function split(args: unknown[]): { rest: unknown[]; fields: Record<string, string | number | boolean> } {
  const out: Record<string, string | number | boolean> = {};
  const rest: unknown[] = [];
  for (const a of args) {
    if (!isMarked(a)) rest.push(oneLine(a));
    else for (const [k, v] of Object.entries(a[FIELDS])) if (v !== undefined) out[k] = v;
  }
  return { rest, fields: out };
}

const text = (args: unknown[]) =>
  args.map((a) => (a instanceof Error ? a.stack : typeof a === "string" ? a : JSON.stringify(a))).join(" ");

/**
 * The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)): consola's level 0 (error, fatal) is
 * 3, 1 (warn) 4, 2–3 (log, info, success, …) 6, 4 and up (debug, trace) 7.
 */
export function priority(level: number): number {
  return level <= 0 ? 3 : level === 1 ? 4 : level <= 3 ? 6 : 7;
}

/** The pretty line's fields, after the message: `key=value`, quoted (escaped) when the value has a space or a control. */
function pairs(f: Record<string, string | number | boolean>): string {
  return Object.entries(f)
    .map(([k, v]) => `${k}=${typeof v === "string" && needsQuotes(v) ? json(v) : v}`)
    .join(" ");
}

// JSON.stringify escapes U+0000–U+001F only: DEL and the C1 controls (U+009B is a terminal's CSI, as ESC [ is) went
// out as they were, in a field's quoted value and in every JSON line; so did the reordering ones (core/reorder.ts).
const C1 = new RegExp(`[\\u007f-\\u009f${REORDERING}]`, "g");
const json = (v: unknown) =>
  JSON.stringify(v).replace(C1, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

const QUOTED = new RegExp(`[\\s"=\\u0000-\\u001f\\u007f-\\u009f${REORDERING}]`);
const needsQuotes = (v: string) => QUOTED.test(v);

interface LogObj {
  date: Date;
  type: string;
  level: number;
  tag: string;
  args: unknown[];
}

/** One JSON object a line: time, level, tag, message and the call's fields at the top level. */
function jsonLine(o: LogObj): string {
  const { rest, fields: f } = split(o.args);
  return json({
    time: o.date.toISOString(),
    level: o.type,
    ...(o.tag ? { tag: o.tag } : {}),
    message: text(rest),
    ...f,
  });
}

/** The plain line for journald, which keeps the time and the unit itself: `[tag] message key=value`. */
function plainLine(o: LogObj): string {
  const { rest, fields: f } = split(o.args);
  const extra = pairs(f);
  return `${o.tag ? `[${o.tag}] ` : ""}${text(rest)}${extra ? ` ${extra}` : ""}`;
}

// The pretty line, written here rather than by consola's reporters: its fancy one measured ~42 µs a line (it
// measures the line's display width with Intl.Segmenter even when nothing is aligned), a fifth of serve's main
// thread at two lines a task. On a terminal: the time, tag and type's icon in colour; elsewhere (a pipe, a file,
// a service manager): consola's basic form, `[info] [tag] message key=value`.
const ICONS: Record<string, string> = { error: "✖", fatal: "✖", warn: "⚠", info: "ℹ", success: "✔", ready: "✔" };
const sgr = (code: number, s: string) => `\x1b[${code}m${s}\x1b[39m`;
const TYPE_COLOUR: Record<string, number> = { error: 31, fatal: 31, warn: 33, info: 36, success: 32, ready: 32 };

function prettyLine(o: LogObj, colour: boolean): string {
  const line = plainLine({ ...o, tag: "" });
  if (!colour) return `[${o.type}] ${o.tag ? `[${o.tag}] ` : ""}${line}`;
  const icon = ICONS[o.type] ?? o.type;
  const time = o.date.toTimeString().slice(0, 8);
  return `${sgr(90, time)} ${o.tag ? `${sgr(90, `[${o.tag}]`)} ` : ""}${sgr(TYPE_COLOUR[o.type] ?? 90, icon)} ${line}`;
}

let format: "pretty" | "json" = "pretty";
let journald = false;

function reporters(): ConsolaReporter[] {
  const colour = Boolean(process.stderr.isTTY) && !process.env.NO_COLOR;
  return [
    {
      log(o) {
        const line =
          format === "json"
            ? jsonLine(o as LogObj)
            : journald
              ? plainLine(o as LogObj)
              : prettyLine(o as LogObj, colour);
        process.stderr.write(`${journald ? `<${priority(o.level)}>` : ""}${line}\n`);
      },
    },
  ];
}

function apply(): void {
  const r = reporters();
  for (const l of [log, ...tagged]) l.setReporters(r);
}
apply();

/**
 * `json`: one JSON object a line (time, level, tag, message, fields), for log collectors; `pretty` (default) for
 * people. `underJournald`: stderr goes to journald (the caller checked $JOURNAL_STREAM), so every line starts
 * with its syslog priority and `journalctl -p warning` finds warnings.
 */
export function setLogFormat(f: string | undefined, underJournald = journald): void {
  const next = f || "pretty";
  if (next !== "pretty" && next !== "json") throw new Error(`unknown log format ${f} (use json or pretty)`);
  format = next;
  journald = underJournald;
  apply();
}

export const LOG_LEVELS = ["silent", "error", "warn", "info", "debug", "trace"] as const;

export function setLogLevel(level: string | undefined): void {
  if (!level) return;
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new Error(`unknown log level ${level} (use ${LOG_LEVELS.join(", ")})`);
  const l = LogLevels[level as LogType];
  log.level = l;
  for (const t of tagged) t.level = l;
}

/** The level and format in force, for a reload to say what it changed. */
export function logSettings(): { level: string; format: string } {
  const level = LOG_LEVELS.find((n) => LogLevels[n as LogType] === log.level) ?? String(log.level);
  return { level, format };
}
