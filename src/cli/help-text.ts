// citty pads every row of a usage table to its longest description: one long description (`proplet`'s, with its
// environment variables) made each line of `propeller --help` hundreds of spaces wide, and a terminal wrapped
// them into blank lines; `serve --help` right-aligned its flags to a column 73 wide. The usage text is tidied
// before it is printed, for a terminal of `width` columns:
//  - no trailing spaces, no colour codes (their width is not what a terminal shows);
//  - a table whose name column fits in less than half the width keeps it, its long rows wrapped under their
//    description; a wider one puts each name on a line of its own, its description below, indented;
//  - other long lines wrap at spaces (USAGE's list of commands aside: it has none to wrap at);
//  - an alias of several letters is shown with two dashes, as it is typed (`--manager-url`, not `-manager-url`).

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are what is matched
const ANSI = /\u001b\[[0-9;]*m/g;
/** A table row: its name part, two spaces or more, then its description. */
const ROW = /^( +\S+(?: \S+)*?) {2,}(?=\S)/;
const INDENT = 6;

export function tidyUsage(text: string, width: number): string {
  const lines = text
    .replace(ANSI, "")
    .split("\n")
    .map((l) => l.trimEnd());
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    if (!ROW.test(lines[i]!)) {
      const line = lines[i++]!;
      out.push(line.startsWith("USAGE") ? line : wrap(line, width, 0));
      continue;
    }
    let j = i;
    while (j < lines.length && ROW.test(lines[j]!)) j++;
    const rows = lines.slice(i, j).map((r) => {
      const name = ROW.exec(r)![0];
      return { name: aliases(name.trimEnd()), col: name.length, desc: r.slice(name.length) };
    });
    const col = Math.max(...rows.map((r) => r.col));
    for (const r of rows) {
      if (col < width / 2) out.push(wrap(`${r.name.padEnd(r.col)}${r.desc}`, width, r.col));
      else out.push(`  ${r.name.trim()}`, wrap(`${" ".repeat(INDENT)}${r.desc}`, width, INDENT));
    }
    i = j;
  }
  return out.join("\n");
}

/** `-manager-url` as citty shows a long alias: `--manager-url`, which is what the parser takes. */
const aliases = (name: string) => name.replace(/(^ *|, )-(?=[A-Za-z][\w-]+)/g, "$1--");

/** `line` broken at spaces into lines of at most `width` (a word longer than that stays whole). */
function wrap(line: string, width: number, indent: number): string {
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    let cut = rest.lastIndexOf(" ", width);
    if (cut <= indent) cut = rest.indexOf(" ", width);
    if (cut <= indent) break;
    out.push(rest.slice(0, cut).trimEnd());
    rest = " ".repeat(indent) + rest.slice(cut + 1).trimStart();
  }
  out.push(rest);
  return out.join("\n");
}
