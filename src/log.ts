import { createConsola, LogLevels, type LogType } from "consola";

// One logger for every subcommand. Logs go to stderr so a CLI's stdout stays clean for --json output.
export const log = createConsola({ level: LogLevels.info, stdout: process.stderr, stderr: process.stderr });

export function setLogLevel(level: string | undefined): void {
  if (!level) return;
  const l = LogLevels[level as LogType];
  if (l === undefined) throw new Error(`unknown log level ${level} (use silent, error, warn, info, debug or trace)`);
  log.level = l;
}
