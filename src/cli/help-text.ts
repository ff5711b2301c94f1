// citty pads every row of a usage table to its longest description: one long description (`proplet`'s, with its
// environment variables) made each line of `propeller --help` hundreds of spaces wide, and a terminal wrapped
// them into blank lines. The usage text is tidied before it is printed: no trailing spaces, and a table row longer
// than the terminal is wrapped with its continuation under the row's description column.

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes are what is matched
const ANSI = /\u001b\[[0-9;]*m/g;
const visible = (s: string) => s.replace(ANSI, "").length;

/** The usage text with lines trimmed, and those wider than `width` wrapped at spaces. */
export function tidyUsage(text: string, width: number): string {
  return text
    .split("\n")
    .map((raw) => {
      const line = raw.trimEnd();
      if (visible(line) <= width) return line;
      // A table row: its name, two spaces or more, then its description, whose column the wrapped rest keeps.
      // Other lines (the title, USAGE's list of commands) are left whole: a terminal wraps them as well.
      const col = /^\s*\S+(?: \S+)*? {2,}/.exec(line.replace(ANSI, ""))?.[0].length ?? 0;
      return col > 0 && col <= width / 2 ? wrap(line, width, col) : line;
    })
    .join("\n");
}

function wrap(line: string, width: number, indent: number): string {
  const out: string[] = [];
  let rest = line;
  while (visible(rest) > width) {
    // The last space within the width (measured without colour codes), else the first space after it.
    let cut = -1;
    let seen = 0;
    for (let i = 0; i < rest.length && seen <= width; i++) {
      if (rest[i] === "\u001b") {
        const end = rest.indexOf("m", i);
        if (end > i) {
          i = end;
          continue;
        }
      }
      if (rest[i] === " " && seen > indent) cut = i;
      seen++;
    }
    if (cut < 0) cut = rest.indexOf(" ", width);
    if (cut < 0) break;
    out.push(rest.slice(0, cut).trimEnd());
    rest = " ".repeat(indent) + rest.slice(cut + 1).trimStart();
  }
  out.push(rest);
  return out.join("\n");
}
