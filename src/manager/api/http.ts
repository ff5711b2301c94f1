import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { describeZodError, type ErrorKind, invalid } from "../../core/errors.ts";
import { nestedDeeperThan } from "../../core/json.ts";
import { type Page, PageQuery } from "../../core/page.ts";

// What every route shares: bodies and queries validated with the core schemas, paged listings, and the one place
// where an error kind becomes an HTTP status.

/** No request body needs more; deeper JSON only costs stack when it is stored or sent on. */
const MAX_DEPTH = 32;

export const STATUS_OF: Record<ErrorKind, ContentfulStatusCode> = {
  invalid: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
};

export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  // The media type exactly: `text/plain; charset=application/json` passes a substring check, and a browser page
  // may send that without a CORS preflight.
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") throw invalid("Content-Type must be application/json");
  const text = await c.req.text();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw invalid(`body is not valid JSON: ${e instanceof Error ? e.message : e}`);
  }
  return checked(data, schema);
}

/** A decoded body (JSON, CBOR) against its schema: bounded nesting, then the schema; 400 naming the field. */
export function checked<S extends z.ZodType>(data: unknown, schema: S): z.output<S> {
  if (nestedDeeperThan(data, MAX_DEPTH)) throw invalid(`body nests deeper than ${MAX_DEPTH} levels`);
  const r = schema.safeParse(data);
  if (!r.success) throw invalid(describeZodError(r.error));
  return r.data;
}

/** A paged listing: `?offset&limit` in, `{offset, limit, total, <key>: [...]}` out. */
export function paged<T>(c: Context, key: string, list: (offset: number, limit: number) => Page<T>): Response {
  const q = PageQuery.safeParse({ offset: c.req.query("offset"), limit: c.req.query("limit") });
  if (!q.success) throw invalid(q.error.issues.map((i) => i.message).join("; "));
  const r = list(q.data.offset, q.data.limit);
  return c.json({ offset: r.offset, limit: r.limit, total: r.total, [key]: r.items });
}

export function query<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  const r = schema.safeParse(c.req.query(name) || undefined);
  if (!r.success) throw invalid(`${name}: ${r.error.issues[0]!.message}`);
  return r.data;
}
