import type { Signature, ValType } from "./wasm-info.ts";

// Pure rules of the in-process runtime (docs/ARCHITECTURE.md, "Runtimes"): which export runs, how inputs become
// arguments, how the result becomes text, and which `cli_args` runtime options are understood (wasmtime's spelling).

export const FALLBACK_EXPORTS = ["main", "run", "_start"];

export type Entry = { kind: "call"; export: string; sig: Signature } | { kind: "command" };

/**
 * The export `name` if the module has it, else a WASI command's `_start`, else `main` or `run`.
 * Returns an error text listing what was tried and what exists.
 */
export function chooseEntry(functions: Map<string, Signature>, name: string, invoke?: string): Entry | string {
  const wanted = invoke ?? name;
  const sig = functions.get(wanted);
  if (sig && wanted !== "_start") return { kind: "call", export: wanted, sig };
  if (invoke === undefined) {
    if (functions.has("_start")) return { kind: "command" };
    for (const f of FALLBACK_EXPORTS) {
      const s = functions.get(f);
      if (s) return { kind: "call", export: f, sig: s };
    }
  } else if (wanted === "_start" && functions.has("_start")) return { kind: "command" };
  const tried = invoke !== undefined ? [invoke] : [name, ...FALLBACK_EXPORTS];
  return `no export to run: tried ${tried.join(", ")}; the module exports ${[...functions.keys()].join(", ") || "no functions"}`;
}

const INT = /^[+-]?(\d+|0x[0-9a-fA-F]+)$/;

/** Converts each input string to the parameter's type; errors name the input and the type. */
export function parseArgs(sig: Signature, exportName: string, inputs: readonly string[]): (number | bigint)[] | string {
  if (inputs.length !== sig.params.length) {
    return `${exportName} takes ${sig.params.length} argument(s) (${sig.params.join(", ") || "none"}), got ${inputs.length} input(s)`;
  }
  const out: (number | bigint)[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const v = parseOne(sig.params[i]!, inputs[i]!.trim());
    if (v === undefined) return `input ${i} (${JSON.stringify(inputs[i])}) is not a valid ${sig.params[i]}`;
    out.push(v);
  }
  return out;
}

function parseOne(t: ValType, s: string): number | bigint | undefined {
  switch (t) {
    case "i32": {
      if (!INT.test(s)) return undefined;
      const n = Number(BigInt(s.replace(/^\+/, "")));
      return n >= -(2 ** 31) && n < 2 ** 32 ? n | 0 : undefined;
    }
    case "i64": {
      if (!INT.test(s)) return undefined;
      const n = BigInt(s.replace(/^\+/, ""));
      return n >= -(2n ** 63n) && n < 2n ** 64n ? BigInt.asIntN(64, n) : undefined;
    }
    case "f32":
    case "f64": {
      const n = parseFloatText(s);
      return n === undefined || t === "f64" ? n : Math.fround(n);
    }
    default:
      return undefined;
  }
}

/** A float's text as wasmtime's CLI takes it: decimal, exponent, `inf`, `infinity`, `nan` (any case, signed). */
export function parseFloatText(s: string): number | undefined {
  if (!/^[+-]?(inf|infinity|nan|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$/i.test(s)) return undefined;
  const lower = s.toLowerCase().replace(/^\+/, "");
  if (lower.endsWith("nan")) return NaN;
  if (lower.endsWith("inf") || lower.endsWith("infinity")) return lower.startsWith("-") ? -Infinity : Infinity;
  return Number(s);
}

/** A float as upstream prints it (Rust formatting: `1` for 1.0, shortest f32 digits, `NaN`, `inf`). */
export function formatFloat(t: "f32" | "f64", v: number): string {
  if (t === "f32") return formatF32(v);
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  return String(v);
}

/** First return value as text, like upstream (Rust float formatting: `1` for 1.0, shortest f32 digits). */
export function formatResult(sig: Signature, value: unknown): string {
  const first = Array.isArray(value) ? value[0] : value;
  const t = sig.results[0];
  if (t === undefined || first === undefined) return "";
  if ((t === "f32" || t === "f64") && typeof first === "number") return formatFloat(t, first);
  return String(first);
}

function formatF32(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "NaN" : v > 0 ? "inf" : "-inf";
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(v);
}

export interface RuntimeOptions {
  /** host path → guest path; `readonly`: the guest's writes are not kept (the proplet's own inputs, FL's model). */
  dirs: { host: string; guest: string; readonly?: boolean }[];
  env: Record<string, string>;
  invoke?: string;
}

/** A guest environment variable's name: a letter or `_`, then letters, digits, `_`, `.`, `-` (at most 256). */
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,255}$/;

/**
 * Why a task's env entry cannot be passed to a guest: a name outside the set above (a `=` would split it
 * elsewhere, a leading `-` reads as an option), or a NUL, which no process environment can hold.
 */
export function envEntryError(key: string, value: string): string | undefined {
  if (!ENV_KEY.test(key))
    return `env name ${JSON.stringify(key.slice(0, 80))} is not allowed: a letter or _, then letters, digits, _, . or -, at most 256`;
  if (value.includes("\0")) return `env ${key}: the value holds a NUL character`;
  return undefined;
}

/** The first entry of `env` that cannot be passed to a guest, as an error text. */
export function envError(env: Record<string, string>): string | undefined {
  for (const [k, v] of Object.entries(env)) {
    const e = envEntryError(k, String(v));
    if (e) return e;
  }
  return undefined;
}

/** The options back as flags in wasmtime's spelling, for a runtime in another process (`--invoke` apart). */
export function formatRuntimeOptions(o: RuntimeOptions): string[] {
  const dirs = o.dirs.map((d) => `--dir=${d.host}::${d.guest}`);
  return [...dirs, ...Object.entries(o.env).map(([k, v]) => `--env=${k}=${v}`)];
}

/** Parses `cli_args` as wasmtime runtime options. Unknown options are an error, not ignored. */
export function parseRuntimeOptions(cliArgs: readonly string[] | undefined): RuntimeOptions | string {
  const opts: RuntimeOptions = { dirs: [], env: {} };
  const args = [...(cliArgs ?? [])];
  while (args.length) {
    const a = args.shift()!;
    const [flag, inline] =
      a.startsWith("--") && a.includes("=")
        ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
        : [a, undefined];
    const value = () => inline ?? args.shift();
    if (flag === "--dir") {
      const v = value();
      if (!v) return "--dir needs HOST[::GUEST]";
      const [host, guest] = v.includes("::") ? (v.split("::", 2) as [string, string]) : [v, v];
      if (!host || !guest) return `--dir ${v}: expected HOST::GUEST`;
      opts.dirs.push({ host, guest });
    } else if (flag === "--env") {
      const v = value();
      const eq = v?.indexOf("=") ?? -1;
      // Not echoed: an --env value is masked in every view of the task, and this error is shown to viewers too.
      if (!v || eq <= 0) return `--env needs KEY=VALUE: what followed it has no name before an "="`;
      const bad = envEntryError(v.slice(0, eq), v.slice(eq + 1));
      if (bad) return `--env: ${bad}`;
      opts.env[v.slice(0, eq)] = v.slice(eq + 1);
    } else if (flag === "--invoke") {
      const v = value();
      if (!v) return "--invoke needs an export name";
      opts.invoke = v;
    } else {
      // The option's name only: what follows an "=", or a value whose option was mistyped, may be a secret.
      const what = a.startsWith("-") ? JSON.stringify(flag) : "a value without its option";
      return `unsupported runtime option ${what} in cli_args (supported: --dir=HOST::GUEST, --env K=V, --invoke NAME)`;
    }
  }
  return opts;
}
