// A TOML file parsed, or an error naming the file and the line. Bun's TOML parser says what is wrong
// ("Expected ']' to close a table header") but not where, and a config file's typo is found by its line.

/** The text parsed; a syntax error says `FILE, line N: what`. */
export function parseToml(text: string, file: string): Record<string, unknown> {
  try {
    return Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (e) {
    const message = e instanceof Error ? e.message.replace(/^TOML Parse error: /, "") : String(e);
    const line = errorLine(text, e instanceof Error ? e.message : String(e));
    throw new Error(`${file}${line ? `, line ${line}` : ""}: ${message}`);
  }
}

/**
 * The line of the error: the first whose text, with the lines before it, fails as the whole does. (A value that goes
 * on over several lines fails earlier with another message, an unclosed array's, and is passed over.)
 */
function errorLine(text: string, message: string): number | undefined {
  const lines = text.split("\n");
  for (let n = 1; n <= lines.length; n++) {
    try {
      Bun.TOML.parse(`${lines.slice(0, n).join("\n")}\n`);
    } catch (e) {
      if ((e instanceof Error ? e.message : String(e)) === message) return n;
    }
  }
  return undefined;
}
