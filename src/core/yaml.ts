// Jobs and workflows may be posted as YAML (docs/ARCHITECTURE.md, "The console"): small files written by hand.
// Anchors and aliases are refused: an alias repeats a node, so a few lines can stand for billions of nodes to walk,
// store and send. Bun's parser has no option to turn them off, so the text is checked before it is parsed, and the
// parsed value after.

/**
 * `&` or `*` where YAML reads a node property: at the start, after white space or a flow indicator, and followed
 * by a name (any character but white space and `[]{},`, so `*.l0` too).
 */
const PROPERTY = /(^|[\s[{,:])([&*])[^\s[\]{},]/g;

/**
 * Where a line holds a plain scalar: after its indentation, sequence dashes and an optional `key: `, a scalar that
 * starts with a character no indicator uses. `&` and `*` inside it are text (a cron expression such as
 * `0 *\/5 * * *`) up to a comment, a flow indicator or `: `, whatever context the line is really in (inside a
 * quoted or block scalar they are text too). Anything else is checked: a comment or a quoted string may be refused
 * for an `&name` in it, but nothing the parser reads as an anchor or alias passes.
 */
const PLAIN_LINE = /^[ \t]*(?:-[ \t]+)*(?:(?:[A-Za-z0-9_.$/-][^:#\s]*|"[^"\\\n]*"|'[^'\n]*')[ \t]*:[ \t]+)?/;
const PLAIN_START = /[A-Za-z0-9_./~=+($^;\\]/;
const PLAIN_END = /[ \t]#|[,[\]{}]|:(?=[\s]|$)/;

/** The 1-based line and column of the first anchor or alias in `text`, if any; text inside a plain scalar is not one. */
export function yamlAliasAt(text: string): { line: number; column: number; token: string } | undefined {
  // YAML breaks lines at CR too.
  const lines = text.split(/\r\n?|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    const lead = PLAIN_LINE.exec(line)![0].length;
    if (PLAIN_START.test(line.charAt(lead))) {
      // Blank out the plain scalar's text: what follows it (a flow indicator, a comment) is checked as usual.
      const rest = line.slice(lead);
      const end = rest.search(PLAIN_END);
      const len = end < 0 ? rest.length : end;
      line = line.slice(0, lead) + "x".repeat(len) + rest.slice(len);
    }
    PROPERTY.lastIndex = 0;
    const m = PROPERTY.exec(line);
    if (m) {
      const at = m.index + m[1]!.length;
      return { line: i + 1, column: at + 1, token: lines[i]!.slice(at).split(/[\s[\]{},]/)[0]! };
    }
  }
  return undefined;
}

/**
 * Why a parsed YAML value cannot have come from its text without aliases, if it cannot: a node reached twice (an
 * alias of a mapping or sequence), or more nodes and characters than the text has (an alias of a scalar).
 */
export function yamlExpansion(value: unknown, textLength: number): string | undefined {
  let budget = textLength + 1024;
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    budget -= 1 + (typeof v === "string" ? v.length : 0);
    if (budget < 0) return "it expands beyond its text";
    if (typeof v !== "object" || v === null) continue;
    if (seen.has(v)) return "a node appears twice";
    seen.add(v);
    if (Array.isArray(v)) for (const child of v) stack.push(child);
    else
      for (const [k, child] of Object.entries(v)) {
        budget -= k.length;
        stack.push(child);
      }
  }
  return undefined;
}
