import { type ConsolaInstance, createConsola, LogLevels, type LogType } from "consola";

// One logger for every subcommand. Logs go to stderr so a CLI's stdout stays clean for --json output.
export const log = createConsola({ level: LogLevels.info, stdout: process.stderr, stderr: process.stderr });

// withTag() copies the level at creation, so tagged loggers are tracked to follow --log-level.
const tagged: ConsolaInstance[] = [];

export function tag(name: string): ConsolaInstance {
  const l = log.withTag(name);
  tagged.push(l);
  return l;
}

export function setLogLevel(level: string | undefined): void {
  if (!level) return;
  const l = LogLevels[level as LogType];
  if (l === undefined) throw new Error(`unknown log level ${level} (use silent, error, warn, info, debug or trace)`);
  log.level = l;
  for (const t of tagged) t.level = l;
}
