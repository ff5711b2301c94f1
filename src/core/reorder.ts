// Characters that reorder or break the text around them without being seen: the bidirectional controls (U+061C,
// U+200E/F, U+202A–U+202E, U+2066–U+2069) and the line and paragraph separators (U+2028, U+2029). Text a guest, a
// proplet or another user wrote (a task's error, its output) shows them escaped in logs and on a terminal: a
// guest's error holding U+202E read backwards, with the log line's own task_id and proplet_id fields after it.

/** For a regex character class: `[${REORDERING}]`. */
export const REORDERING = "\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069";

/** `\x1b` for a control of one byte, `\u202e` for one past it. */
export const escapeCodePoint = (c: string): string => {
  const n = c.charCodeAt(0);
  return n > 0xff ? `\\u${n.toString(16).padStart(4, "0")}` : `\\x${n.toString(16).padStart(2, "0")}`;
};

const REORDERING_ALL = new RegExp(`[${REORDERING}]`, "g");

/** The text with its reordering characters written out (`\u202e`): what the console shows of a guest's text. */
export const reorderingShown = (text: string): string => text.replace(REORDERING_ALL, escapeCodePoint);
