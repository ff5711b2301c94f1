import { Cron } from "croner";

// Cron expressions: standard 5 fields, or 6 with a leading seconds field, evaluated in an IANA time zone.

export function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Returns an error text, or undefined when the schedule is valid. */
export function checkSchedule(expr: string, tz = "UTC"): string | undefined {
  if (!validTimezone(tz)) return `unknown time zone ${JSON.stringify(tz)}`;
  const fields = expr.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `expected 5 fields (or 6 with leading seconds), got ${fields}`;
  try {
    const c = new Cron(expr, { timezone: tz, paused: true, mode: "5-or-6-parts" });
    // A date no month has (`0 0 30 2 *`): accepted, it was stored with no next run and never fired.
    if (!c.nextRun()) return `${JSON.stringify(expr)} never fires (no date matches it)`;
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message.replace(/^CronPattern: /, "") : String(e);
  }
}

/** The first fire time strictly after `after`, or undefined if the expression never fires again. */
export function nextRun(expr: string, tz: string | undefined, after: Date): Date | undefined {
  const c = new Cron(expr, { timezone: tz || "UTC", paused: true, mode: "5-or-6-parts" });
  return c.nextRun(after) ?? undefined;
}
