import { escapeCodePoint, REORDERING } from "../core/reorder.ts";
// Output for people (aligned tables, key: value blocks) and for scripts (--json).

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

const show = (v: unknown): string =>
  v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v);

/**
 * Text for a terminal: control characters shown escaped (`\x1b`), so a name, result or error written by a proplet,
 * a guest or another user cannot send escape sequences to whoever reads it (set the clipboard, clear the screen).
 * A record keeps its newlines and tabs. Characters that reorder the text around them (core/reorder.ts) are
 * escaped too.
 */
const CONTROL = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${REORDERING}]`, "g");
const CONTROL_ALL = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${REORDERING}]`, "g");
export const terminalSafe = (text: string, keepLines = false): string =>
  text.replace(keepLines ? CONTROL : CONTROL_ALL, escapeCodePoint);

/**
 * Cells are cut at 60 characters, an ellipsis showing where, so a long result or error keeps the table readable;
 * `whole` names keys never cut.
 */
export function printTable(
  rows: Record<string, unknown>[],
  columns: [header: string, key: string][],
  whole: readonly string[] = [],
): void {
  const cut = (k: string, v: string) => (whole.includes(k) || v.length <= 60 ? v : `${v.slice(0, 59)}…`);
  const cells = rows.map((r) => columns.map(([, k]) => terminalSafe(cut(k, show(r[k]).replace(/\s+/g, " ")))));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${line(columns.map(([h]) => h))}\n`);
  for (const c of cells) process.stdout.write(`${line(c)}\n`);
}

export function printRecord(r: Record<string, unknown>): void {
  const keys = Object.keys(r);
  const w = Math.max(...keys.map((k) => k.length));
  for (const k of keys) process.stdout.write(`${terminalSafe(k.padEnd(w))}  ${terminalSafe(show(r[k]), true)}\n`);
}
