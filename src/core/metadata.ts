import { z } from "zod";
import { FORBIDDEN_KEYS } from "./json.ts";

// A task's metadata is the user's own JSON object; lists can be filtered by it (upstream's `?metadata=`).

/** Keys a filter may name: they go into a JSON path, so only plain characters (upstream answers 500 otherwise). */
const KEY = /^[a-zA-Z0-9._-]{1,100}$/;
const Scalar = z.union([z.string().max(1000), z.number(), z.boolean()]);

/**
 * A filter key that zod's record would drop (`__proto__`) or that names the prototype, or a key given twice
 * (JSON.parse keeps the last): refused rather than filtering on something else than asked.
 */
function keyProblem(text: string, o: object): string | undefined {
  const bad = Object.keys(o).find((k) => FORBIDDEN_KEYS.has(k));
  if (bad) return `the key ${JSON.stringify(bad)} is not accepted`;
  // A flat object: every string followed by ':' is a key.
  if (Object.values(o).some((v) => typeof v === "object" && v !== null)) return undefined;
  const named = text.match(/"(?:[^"\\]|\\.)*"\s*:/g)?.length ?? 0;
  return named > Object.keys(o).length ? "a key is given twice" : undefined;
}

/**
 * `GET /tasks?metadata=<JSON object>`: every pair must match (AND); values are compared as text, so `1` and `"1"`
 * match, as upstream does. Tasks without metadata never match.
 */
export const MetadataFilter = z
  .string()
  .max(4096, "at most 4096 characters")
  .transform((s, ctx) => {
    let v: unknown;
    try {
      v = JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "not a JSON object" });
      return z.NEVER;
    }
    const why = v && typeof v === "object" && !Array.isArray(v) ? keyProblem(s, v) : undefined;
    if (why) {
      ctx.addIssue({ code: "custom", message: why });
      return z.NEVER;
    }
    return v;
  })
  .pipe(
    z
      .record(z.string().regex(KEY), Scalar, {
        error: (iss) =>
          iss.code === "invalid_key"
            ? "keys may only hold letters, digits, '.', '_' and '-' (1 to 100)"
            : iss.code === "invalid_type"
              ? "not a JSON object of strings, numbers or booleans"
              : undefined,
      })
      .refine((o) => Object.keys(o).length <= 16, "at most 16 keys"),
  )
  .transform((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)])));
export type MetadataFilter = z.output<typeof MetadataFilter>;

/** The CLI's `--metadata`: a JSON object, or upstream's `KEY=VALUE[,KEY2=VALUE2]` (values are strings). */
export function parseMetadataArg(s: string): Record<string, unknown> | string {
  if (s.trimStart().startsWith("{")) {
    try {
      const v = JSON.parse(s) as unknown;
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
      return "not a JSON object";
    } catch (e) {
      return `not JSON: ${e instanceof Error ? e.message : e}`;
    }
  }
  const out: Record<string, string> = {};
  for (const pair of s.split(",")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return `expected KEY=VALUE, got ${JSON.stringify(pair)}`;
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

/** A metadata value as the filter compares it: text, as stored JSON reads back (`true`, `3`, `"x"` → `x`). */
export function metadataText(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}
