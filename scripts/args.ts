import { existsSync, readFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";

// The flags of a script in scripts/ (benchmarks, the fault harness): `--help` prints its usage, the `//   bun
// scripts/…` lines of its header, and a mistyped flag says so in one line with that usage instead of a stack
// trace, as the CLI does. A number flag is checked too (`--tasks abc` ran a NaN-task benchmark, `--concurrency 0`
// hung), and a `--bin` that is not there is named instead of a stack trace.

/** A number flag's rule: the least value allowed (`min`, inclusive) or one it must exceed (`above`); `list`: a comma list. */
export interface NumberRule {
  min?: number;
  above?: number;
  list?: boolean;
}

function usage(script: string): string {
  const lines: string[] = [];
  let inUsage = false;
  for (const l of readFileSync(script, "utf8").split("\n")) {
    // A usage line, and the lines that carry on its flags (`//     [--bin …]`).
    inUsage = /^\/\/\s+bun scripts\//.test(l) || (inUsage && /^\/\/\s{4,}\[/.test(l));
    if (inUsage) lines.push(l.replace(/^\/\/\s+/, (lead) => (lead.length > 6 ? "      " : "  ")));
  }
  return lines.length ? `usage:\n${lines.join("\n")}\n` : "";
}

function fail(script: string, message: string): never {
  process.stderr.write(`error: ${message}\n${usage(script)}`);
  process.exit(2);
}

function checkNumber(name: string, raw: string, rule: NumberRule): string | undefined {
  const bound = rule.above !== undefined ? `greater than ${rule.above}` : `at least ${rule.min ?? 0}`;
  const want = `${rule.list ? "a comma list of numbers" : "a number"} ${bound}`;
  for (const part of rule.list ? raw.split(",") : [raw]) {
    const n = Number(part);
    const ok =
      part.trim() !== "" && Number.isFinite(n) && (rule.above !== undefined ? n > rule.above : n >= (rule.min ?? 0));
    if (!ok) return `--${name} must be ${want}, got "${raw}"`;
  }
  return undefined;
}

export function scriptArgs<T extends ParseArgsConfig>(
  script: string,
  config: T,
  numbers: Record<string, NumberRule> = {},
): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usage(script));
    process.exit(0);
  }
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    fail(script, String(e instanceof Error ? e.message : e));
  }
  const values = parsed.values as Record<string, unknown>;
  for (const [name, rule] of Object.entries(numbers)) {
    const raw = values[name];
    if (typeof raw !== "string") continue;
    const problem = checkNumber(name, raw, rule);
    if (problem) fail(script, problem);
  }
  const bin = values.bin;
  if (typeof bin === "string" && !existsSync(bin))
    fail(script, `--bin ${bin}: no such file (npm run build writes dist/propeller)`);
  return parsed;
}
