import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { log, setLogFormat, setLogLevel } from "../log.ts";
import type { Layers } from "./layers.ts";
import { terminalSafe } from "./output.ts";
import { underJournald } from "./systemd.ts";

// Helpers shared by every subcommand: env twins of flags, number parsing, and error reporting.

export const env = (name: string): string | undefined => {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
};

export function int(name: string, v: string | undefined, min = 0, max = 65535): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v.trim()) || n < min || n > max) {
    // A flag's bare name gets its dashes; a label already made (`--http-port`, `http_port in …`, an env name) not.
    const label = /^[a-z0-9][a-z0-9-]*$/.test(name) ? `--${name}` : name;
    throw new UsageError(`${label} must be an integer between ${min} and ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Seconds as "10", "0.5" or "10s"; upstream silently kept the default on garbage, we refuse it. */
export function seconds(name: string, v: string | undefined, dflt: number, max = Infinity): number {
  if (v === undefined || v === "") return dflt;
  const m = /^(\d+(?:\.\d+)?)s?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0)
    throw new UsageError(`${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  if (Number(m[1]) > max) throw new UsageError(`${name} must be at most ${max} seconds, got ${JSON.stringify(v)}`);
  return Number(m[1]);
}

/**
 * A duration such as 90s, 30m, 6h, 1d (a bare number is seconds), at least 1 s and at most 365 days; "off", "0"
 * or "" is none.
 */
export function duration(name: string, v: string | undefined): number | undefined {
  const t = (v ?? "").trim();
  if (t === "" || t === "off" || t === "0") return undefined;
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(t);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m?.[2] ?? "s") as "s"];
  const s = m ? Number(m[1]) * unit : Number.NaN;
  if (!(s >= 1) || s > 365 * 86400)
    throw new UsageError(
      `${name} must be a duration from 1s to 365d such as 90s, 30m, 6h, 1d, or off; got ${JSON.stringify(v)}`,
    );
  return s;
}

export { nearest } from "../core/nearest.ts";

export class UsageError extends Error {}

/** A file the user named: its bytes, or a usage error that says which file and why. */
export function readUserFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code ? (FILE_ERRORS[code] ?? code) : e instanceof Error ? e.message : String(e);
    throw new UsageError(`cannot read ${path}: ${why}`);
  }
}

/** What a person is told for the usual reasons a file cannot be read (not Node's "ENOENT: …, open '…'"). */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
};

/** Where serve keeps its data: /var/lib/propeller for root (a system service), else ~/.propeller. */
export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? "/var/lib/propeller" : join(homedir(), ".propeller");
}

/** Log settings of the long-running commands, layered like their other settings (flag, env, file, default). */
export function logArgs(L: Pick<Layers, "choice" | "name">) {
  // A proplet also reads upstream's PROPLET_LOG_LEVEL (an env file written for upstream's proplet).
  const proplet = L.name === "proplet";
  return {
    "log-level": {
      type: "string",
      description: `silent|error|warn|info|debug|trace (env PROPELLER_LOG_LEVEL${proplet ? ", or PROPLET_LOG_LEVEL" : ""})`,
      default: L.choice(
        "log-level",
        proplet ? ["PROPELLER_LOG_LEVEL", "PROPLET_LOG_LEVEL"] : ["PROPELLER_LOG_LEVEL"],
        "info",
        ["silent", "error", "warn", "info", "debug", "trace"],
      ),
    },
    "log-format": {
      type: "string",
      description: "pretty|json (env PROPELLER_LOG_FORMAT)",
      default: L.choice("log-format", ["PROPELLER_LOG_FORMAT"], "pretty", ["pretty", "json"]),
    },
  } as const;
}

export const logLevelArg = {
  "log-level": {
    type: "string",
    description: "silent|error|warn|info|debug|trace (env PROPELLER_LOG_LEVEL)",
    default: env("PROPELLER_LOG_LEVEL") ?? "info",
  },
  "log-format": {
    type: "string",
    description: "pretty|json (env PROPELLER_LOG_FORMAT)",
    default: env("PROPELLER_LOG_FORMAT") ?? "pretty",
  },
} as const;

/** `--json` on the command line (before `--`): errors too are JSON, `{"error": "…"}` on stderr. */
export function jsonWanted(argv: string[] = process.argv.slice(2)): boolean {
  const own = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  return own.some((a) => a === "--json" || a === "--json=true");
}

function logFlag(flag: string, value: string | undefined, set: () => void): void {
  if (value === "") throw new UsageError(`--${flag} needs a value`);
  try {
    set();
  } catch (e) {
    throw new UsageError(`--${flag} ${value}: ${e instanceof Error ? e.message : e}`);
  }
}

/**
 * Runs a command body; any error becomes `error: <message>` (with --json `{"error": …}`) on stderr and exit
 * code 1. With a log level (the
 * long-running commands), a failure to start exits at once: half-started servers would keep the process alive.
 */
export async function action(
  fn: () => Promise<unknown> | unknown,
  logLevel?: string,
  logFormat?: string,
): Promise<void> {
  try {
    // The flag is named in the error (`--log-format jsn` said only "unknown log format jsn"), and a bare
    // `--log-level` (an empty value) is refused rather than read as the default.
    logFlag("log-level", logLevel, () => setLogLevel(logLevel));
    logFlag("log-format", logFormat, () => setLogFormat(logFormat, underJournald()));
    await fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (jsonWanted()) process.stderr.write(`${JSON.stringify({ error: msg })}\n`);
    // The message may carry what a server, a proplet or another user wrote (an id, a name): no escape sequence of it
    // reaches the terminal, whichever route echoed it.
    else process.stderr.write(`error: ${terminalSafe(msg, true)}\n`);
    if (!(e instanceof UsageError) && log.level >= 4 && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
    if (logLevel !== undefined) process.exit(1);
  }
}
