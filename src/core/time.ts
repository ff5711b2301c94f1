import { z } from "zod";

/** Upstream's "zero time": sent for timestamps that were never set. */
export const ZERO_TIME = "0001-01-01T00:00:00Z";

/** The last time formatted, and its millisecond: a task's way asks several times within one. */
let lastMs = Number.NaN;
let lastIso = "";

/** A time in ms as RFC3339; the last one formatted is kept, so a burst within one millisecond formats it once. */
export const isoAt = (ms: number): string => {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
};

/** Now as RFC3339 (ms precision); formatted once per millisecond, however often it is asked. */
export const nowIso = (): string => isoAt(Date.now());

/** The last second a Date can hold. */
const MAX_DATE_SECS = 8_640_000_000_000;

// Accept RFC3339 strings or Rust's SystemTime form, as the wire protocol allows (docs/ARCHITECTURE.md); always
// produce an RFC3339 string.
export const Timestamp = z.union([
  z.string().refine((s) => !Number.isNaN(Date.parse(s)), "expected an RFC3339 timestamp"),
  z
    // Within what a Date holds (±8.64e15 ms): a later one made toISOString throw inside the bus's decode.
    .object({
      secs_since_epoch: z.number().int().nonnegative().max(MAX_DATE_SECS),
      nanos_since_epoch: z.number().int().nonnegative().max(999_999_999),
    })
    .transform((t) => new Date(t.secs_since_epoch * 1000 + Math.floor(t.nanos_since_epoch / 1e6)).toISOString()),
]);
