// A payload's JSON as the broker's ACL parsed it, for the manager in the same process to take instead of parsing the
// same bytes again: with 10,000 proplets heartbeating every second, the second parse was measurable. Keyed by the
// payload's Buffer, which aedes hands unchanged to an in-process subscriber (direct.ts); the entry goes with it.
// Whoever reads an entry only reads it (the manager's zod parse builds its own objects).

const parsed = new WeakMap<Buffer, unknown>();

export function rememberParsed(payload: Buffer, value: unknown): void {
  parsed.set(payload, value);
}

/** The JSON the broker parsed from this very payload, if it did. */
export function parsedOf(payload: Buffer): unknown {
  return parsed.get(payload);
}
