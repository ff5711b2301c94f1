import { formatFloat, parseFloatText } from "./wasm-call.ts";

// A component's exports as its WIT world declares them (the text `wasm-tools component wit` prints), and the rules
// that turn a task's text inputs into typed arguments and a return value back into text. Pure: no I/O.

/** The WIT types a task's text inputs can express. */
export type WitType =
  | { kind: "bool" | "char" | "string" | "f32" | "f64" }
  | { kind: "int"; name: string; bits: 8 | 16 | 32 | 64; signed: boolean }
  | { kind: "list"; of: WitType };

export interface WitFunc {
  /** The WIT name (kebab-case), which a task names. */
  name: string;
  /** The name of the JS function the transpiled component exports. */
  js: string;
  params: { name: string; type: WitType | string }[];
  /** A type name the inputs cannot express is kept as its text, so the refusal can name it. */
  result?: WitType | string;
}

export interface World {
  functions: Map<string, WitFunc>;
  /** Exports `wasi:cli/run`: a command, run with argv and its stdout as the result. */
  command: boolean;
  /** Exported interfaces other than `wasi:cli/run` (listed in errors, not callable as tasks). */
  interfaces: string[];
}

const INTS: Record<string, { bits: 8 | 16 | 32 | 64; signed: boolean }> = {
  u8: { bits: 8, signed: false },
  u16: { bits: 16, signed: false },
  u32: { bits: 32, signed: false },
  u64: { bits: 64, signed: false },
  s8: { bits: 8, signed: true },
  s16: { bits: 16, signed: true },
  s32: { bits: 32, signed: true },
  s64: { bits: 64, signed: true },
};

export function describe(t: WitType | string): string {
  if (typeof t === "string") return t;
  if (t.kind === "int") return t.name;
  if (t.kind === "list") return `list<${describe(t.of)}>`;
  return t.kind;
}

/** Parses a WIT type expression; one it cannot pass inputs to comes back as its text. */
export function parseType(text: string): WitType | string {
  const s = text.trim();
  if (s === "bool" || s === "char" || s === "string" || s === "f32" || s === "f64") return { kind: s };
  const int = INTS[s];
  if (int) return { kind: "int", name: s, ...int };
  const list = /^list<(.+)>$/.exec(s);
  if (list) {
    const of = parseType(list[1]!);
    return typeof of === "string" ? s : { kind: "list", of };
  }
  return s;
}

/** Splits on commas that are not inside `<…>` or `(…)`. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "<" || c === "(") depth++;
    else if (c === ">" || c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out.map((p) => p.trim()).filter(Boolean);
}

const unescaped = (name: string) => name.replace(/^%/, "");

/** jco's name for a kebab-case export: lower camel case (`fetch-all` → `fetchAll`). */
export function jsName(kebab: string): string {
  return kebab
    .split("-")
    .map((p, i) => (i === 0 ? p.toLowerCase() : p.charAt(0).toUpperCase() + p.slice(1).toLowerCase()))
    .join("");
}

const FUNC = /^export\s+(%?[a-z][a-z0-9-]*)\s*:\s*func\s*\((.*)\)\s*(?:->\s*(.+?))?\s*;$/;
const INTERFACE = /^export\s+([^\s:;]+:[^\s;]+|%?[a-z][a-z0-9-]*\s*:\s*interface)/;

/** Reads the world's function exports and whether it is a command, from the component's printed WIT. */
export function parseWorld(wit: string): World {
  const functions = new Map<string, WitFunc>();
  const interfaces: string[] = [];
  let command = false;
  // The printed world is one declaration per line; only the world block's own exports are read.
  const start = wit.search(/^world\s/m);
  const body = start < 0 ? "" : wit.slice(start);
  for (const raw of body.split("\n")) {
    const line = raw.trim();
    const f = FUNC.exec(line);
    if (f) {
      const name = unescaped(f[1]!);
      const params = splitTop(f[2]!).map((p) => {
        const colon = p.indexOf(":");
        return { name: unescaped(p.slice(0, colon).trim()), type: parseType(p.slice(colon + 1)) };
      });
      const result = f[3] === undefined ? undefined : parseType(f[3]);
      functions.set(name, { name, js: jsName(name), params, ...(result === undefined ? {} : { result }) });
      continue;
    }
    const i = INTERFACE.exec(line);
    if (i) {
      const iface = i[1]!.replace(/\s*:\s*interface$/, "");
      if (/^wasi:cli\/run(@|$)/.test(iface)) command = true;
      else interfaces.push(iface);
    }
  }
  return { functions, command, interfaces };
}

export type Choice = { kind: "call"; func: WitFunc } | { kind: "command" };

/** The same rule as a core module's: the export the task names, else the command, else `main` or `run`. */
export function chooseComponentEntry(world: World, name: string, invoke?: string): Choice | string {
  const wanted = invoke ?? name;
  const f = world.functions.get(wanted);
  if (f) return { kind: "call", func: f };
  if (invoke === undefined) {
    if (world.command) return { kind: "command" };
    for (const fallback of ["main", "run"]) {
      const g = world.functions.get(fallback);
      if (g) return { kind: "call", func: g };
    }
  }
  const has = [...world.functions.keys(), ...(world.command ? ["wasi:cli/run"] : []), ...world.interfaces];
  const tried = invoke !== undefined ? [invoke] : [name, "wasi:cli/run", "main", "run"];
  return `no export to run: tried ${tried.join(", ")}; the component exports ${has.join(", ") || "nothing"}`;
}

/** A value ready for the transpiled export: numbers, bigints, strings, booleans and arrays of them. */
export type WitValue = number | bigint | string | boolean | WitValue[];

const INT = /^[+-]?(\d+|0x[0-9a-fA-F]+)$/;

/** A number inside a JSON list, kept as its source text: a u64 beyond 2^53 must not be rounded on the way. */
class JsonNumber {
  constructor(readonly text: string) {}
}

function parseList(text: string): unknown {
  try {
    return JSON.parse(text, (_k, v, ctx?: { source?: string }) =>
      typeof v === "number" ? new JsonNumber(ctx?.source ?? String(v)) : v,
    );
  } catch {
    return undefined;
  }
}

function intValue(t: Extract<WitType, { kind: "int" }>, v: unknown): number | bigint | undefined {
  const text = v instanceof JsonNumber ? v.text : typeof v === "string" ? v.trim() : undefined;
  if (text === undefined || !INT.test(text)) return undefined;
  const n = BigInt(text.replace(/^\+/, ""));
  const lo = t.signed ? -(2n ** BigInt(t.bits - 1)) : 0n;
  const hi = t.signed ? 2n ** BigInt(t.bits - 1) : 2n ** BigInt(t.bits);
  if (n < lo || n >= hi) return undefined;
  return t.bits === 64 ? n : Number(n);
}

/** One value of type `t` from its text (top level) or from a JSON element (inside a list). */
function toValue(t: WitType, v: unknown, top: boolean): WitValue | undefined {
  switch (t.kind) {
    case "int":
      return intValue(t, v);
    case "f32":
    case "f64": {
      const text = v instanceof JsonNumber ? v.text : typeof v === "string" ? v.trim() : undefined;
      const n = text === undefined ? undefined : parseFloatText(text);
      return n === undefined ? undefined : t.kind === "f32" ? Math.fround(n) : n;
    }
    case "bool":
      if (typeof v === "boolean") return v;
      if (v === "true" || v === "1") return true;
      if (v === "false" || v === "0") return false;
      return undefined;
    case "char":
      return typeof v === "string" && [...v].length === 1 ? v : undefined;
    case "string":
      return typeof v === "string" ? v : undefined;
    case "list": {
      const items = top ? parseList(String(v)) : v;
      if (!Array.isArray(items)) return undefined;
      const out: WitValue[] = [];
      for (const item of items) {
        const x = toValue(t.of, item, false);
        if (x === undefined) return undefined;
        out.push(x);
      }
      return out;
    }
  }
}

/** The task's inputs as the export's arguments; an error names the input and the type. */
export function witArgs(f: WitFunc, inputs: readonly string[]): WitValue[] | string {
  const unsupported = f.params.find((p) => typeof p.type === "string");
  if (unsupported) return `${f.name} takes ${unsupported.name}: ${describe(unsupported.type)}, ${NOT_EXPRESSIBLE}`;
  if (typeof f.result === "string") return `${f.name} returns ${f.result}, ${NOT_EXPRESSIBLE}`;
  if (inputs.length !== f.params.length) {
    const want = f.params.map((p) => `${p.name}: ${describe(p.type)}`).join(", ");
    return `${f.name} takes ${f.params.length} argument(s) (${want || "none"}), got ${inputs.length} input(s)`;
  }
  const out: WitValue[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const t = f.params[i]!.type as WitType;
    const v = toValue(t, inputs[i]!, true);
    if (v === undefined) {
      const hint = t.kind === "list" ? " (a JSON array)" : "";
      return `input ${i} (${JSON.stringify(inputs[i])}) is not a valid ${describe(t)}${hint}`;
    }
    out.push(v);
  }
  return out;
}

const NOT_EXPRESSIBLE =
  "which task inputs cannot express (supported: bool, integers, f32, f64, char, string and lists of them)";

function jsonOf(t: WitType, v: unknown): unknown {
  if (t.kind === "list") return Array.from(v as ArrayLike<unknown>, (x) => jsonOf(t.of, x));
  if (typeof v === "bigint") return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v.toString();
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  return v;
}

/** The return value as text: numbers as upstream formats them, strings as they are, lists as JSON. */
export function formatWitResult(t: WitType | string | undefined, v: unknown): string {
  if (t === undefined || typeof t === "string") return "";
  switch (t.kind) {
    case "list":
      return JSON.stringify(jsonOf(t, v));
    case "f32":
    case "f64":
      return formatFloat(t.kind, Number(v));
    default:
      return String(v);
  }
}
