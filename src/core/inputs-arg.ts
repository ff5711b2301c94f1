// `--inputs` (and `--cli-args`) as a person writes them on the command line: items split at commas. An item that
// opens with `[` or `{` runs to its closing bracket (a component's list or record, given as JSON, keeps its commas),
// and one that opens with `"` is a JSON string (a comma, or an empty string, inside it). Anything else runs to the
// next comma, as before. An empty item is refused: two commas in a row were dropped in silence.

/** The items, or what is wrong with the text. */
export function splitInputs(text: string): string[] | string {
  if (text.trim() === "") return [];
  const out: string[] = [];
  let i = 0;
  while (i <= text.length) {
    while (text[i] === " ") i++;
    const n = out.length + 1;
    const first = text[i];
    let end: number | string;
    if (first === '"') end = stringEnd(text, i, n);
    else if (first === "[" || first === "{") end = bracketEnd(text, i, n);
    else {
      end = text.indexOf(",", i);
      if (end < 0) end = text.length;
    }
    if (typeof end === "string") return end;
    const item = text.slice(i, end).trim();
    if (item === "")
      return `input ${n} is empty (two commas in a row, or one at an end): remove it, or write "" for an empty string`;
    if (first === '"') out.push(JSON.parse(item) as string);
    else out.push(item);
    // Past the item: only spaces, then a comma or the end.
    let j = end;
    while (text[j] === " ") j++;
    if (j < text.length && text[j] !== ",")
      return `input ${n} (${item}) is followed by ${JSON.stringify(text.slice(j, j + 10))}: separate inputs with commas`;
    i = j + 1;
  }
  return out;
}

/** Where the JSON string opening at `from` ends (past its closing quote). */
function stringEnd(text: string, from: number, n: number): number | string {
  for (let i = from + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') {
      try {
        JSON.parse(text.slice(from, i + 1));
      } catch {
        return `input ${n} is not a valid JSON string: ${text.slice(from, i + 1)}`;
      }
      return i + 1;
    }
  }
  return `input ${n} opens a quote it does not close: ${text.slice(from)}`;
}

/** Where the JSON list or object opening at `from` ends (past its closing bracket; strings inside skipped). */
function bracketEnd(text: string, from: number, n: number): number | string {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const e = stringEnd(text, i, n);
      if (typeof e === "string") return e;
      i = e - 1;
    } else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return `input ${n} opens ${text[from]} without closing it: ${text.slice(from)}`;
}
