import { readFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";

// The flags of a script in scripts/ (benchmarks, the fault harness): `--help` prints its usage, the `//   bun
// scripts/…` lines of its header, and a mistyped flag says so in one line with that usage instead of a stack
// trace, as the CLI does.

function usage(script: string): string {
  const lines = readFileSync(script, "utf8")
    .split("\n")
    .filter((l) => /^\/\/\s+bun scripts\//.test(l))
    .map((l) => l.replace(/^\/\/\s+/, "  "));
  return lines.length ? `usage:\n${lines.join("\n")}\n` : "";
}

export function scriptArgs<T extends ParseArgsConfig>(script: string, config: T): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(usage(script));
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : e}\n${usage(script)}`);
    process.exit(2);
  }
}
