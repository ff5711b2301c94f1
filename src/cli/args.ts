import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { log, setLogFormat, setLogLevel } from "../log.ts";
import { underJournald } from "./systemd.ts";

// Helpers shared by every subcommand: env twins of flags, number parsing, and error reporting.

export const env = (name: string): string | undefined => {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
};

export function int(name: string, v: string | undefined, min = 0, max = 65535): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v.trim()) || n < min || n > max) {
    const label = /^[a-z0-9-]+$/.test(name) ? `--${name}` : name;
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

export class UsageError extends Error {}

/** A file the user named: its bytes, or a usage error that says which file and why. */
export function readUserFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** Where serve keeps its data: /var/lib/propeller for root (a system service), else ~/.propeller. */
export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? "/var/lib/propeller" : join(homedir(), ".propeller");
}

/** Log settings of the long-running commands, layered like their other settings (flag, env, file, default). */
export function logArgs(L: { text(flag: string, envs: string[], dflt: string): string }) {
  return {
    "log-level": {
      type: "string",
      description: "silent|error|warn|info|debug (env PROPELLER_LOG_LEVEL)",
      default: L.text("log-level", ["PROPELLER_LOG_LEVEL"], "info"),
    },
    "log-format": {
      type: "string",
      description: "pretty|json (env PROPELLER_LOG_FORMAT)",
      default: L.text("log-format", ["PROPELLER_LOG_FORMAT"], "pretty"),
    },
  } as const;
}

export const logLevelArg = {
  "log-level": {
    type: "string",
    description: "silent|error|warn|info|debug (env PROPELLER_LOG_LEVEL)",
    default: env("PROPELLER_LOG_LEVEL") ?? "info",
  },
  "log-format": {
    type: "string",
    description: "pretty|json (env PROPELLER_LOG_FORMAT)",
    default: env("PROPELLER_LOG_FORMAT") ?? "pretty",
  },
} as const;

/**
 * Runs a command body; any error becomes `error: <message>` on stderr and exit code 1. With a log level (the
 * long-running commands), a failure to start exits at once: half-started servers would keep the process alive.
 */
export async function action(
  fn: () => Promise<unknown> | unknown,
  logLevel?: string,
  logFormat?: string,
): Promise<void> {
  try {
    setLogLevel(logLevel);
    setLogFormat(logFormat, underJournald());
    await fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`error: ${msg}\n`);
    if (!(e instanceof UsageError) && log.level >= 4 && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
    if (logLevel !== undefined) process.exit(1);
  }
}
