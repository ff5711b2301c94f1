import type { z } from "zod";

/**
 * A stored JSON document, parsed with its resource's schema: what comes back from storage is checked, not cast.
 * A row that does not match (written by hand, or by a broken build) is an error naming the table and key.
 */
export function readDoc<S extends z.ZodType>(schema: S, text: string, where: string): z.output<S> {
  return checkDoc(schema, JSON.parse(text), where);
}

/** readDoc for a document already parsed (and completed from its row's columns). */
export function checkDoc<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`stored ${where} is malformed: ${i.path.join(".") || "document"}: ${i.message}`);
  }
  return r.data;
}
