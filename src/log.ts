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

/** `json`: one JSON object a line (time, level, tag, message), for log collectors; `pretty` (default) for people. */
export function setLogFormat(format: string | undefined): void {
  if (!format || format === "pretty") return;
  if (format !== "json") throw new Error(`unknown log format ${format} (use json or pretty)`);
  const reporter = {
    log(o: { date: Date; type: string; tag: string; args: unknown[] }) {
      const message = o.args
        .map((a) => (a instanceof Error ? a.stack : typeof a === "string" ? a : JSON.stringify(a)))
        .join(" ");
      process.stderr.write(
        `${JSON.stringify({ time: o.date.toISOString(), level: o.type, ...(o.tag ? { tag: o.tag } : {}), message })}\n`,
      );
    },
  };
  for (const l of [log, ...tagged]) l.setReporters([reporter]);
}

export function setLogLevel(level: string | undefined): void {
  if (!level) return;
  const allowed = ["silent", "error", "warn", "info", "debug", "trace"];
  if (!allowed.includes(level)) throw new Error(`unknown log level ${level} (use ${allowed.join(", ")})`);
  const l = LogLevels[level as LogType];
  log.level = l;
  for (const t of tagged) t.level = l;
}
