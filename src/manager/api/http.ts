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

const YAML_TYPES = new Set(["application/yaml", "application/x-yaml", "text/yaml"]);
const MAX_YAML_BYTES = 1 << 20;

/**
 * A job or workflow is small and written by hand: YAML over 1 MiB, or with aliases (`*name`, which can fan a few
 * lines out into billions of nodes to walk), is refused before it is parsed.
 */
function refuseYamlBombs(text: string): void {
  if (text.length > MAX_YAML_BYTES) throw invalid(`a YAML body is at most ${MAX_YAML_BYTES >> 20} MiB`);
  if (/(^|[\s[{,:-])\*[A-Za-z0-9_]/m.test(text))
    throw invalid("YAML aliases (*name) are not accepted: write the value out");
}

/** A JSON body (or, with `yaml`, a YAML one: jobs and workflows as a person writes them) against its schema. */
export async function jsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  opts: { yaml?: boolean } = {},
): Promise<z.output<S>> {
  // The media type exactly: `text/plain; charset=application/json` passes a substring check, and a browser page
  // may send that without a CORS preflight.
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  const yaml = opts.yaml && YAML_TYPES.has(type);
  if (type !== "application/json" && !yaml) {
    throw invalid(`Content-Type must be application/json${opts.yaml ? " or application/yaml" : ""}`);
  }
  const text = await c.req.text();
  if (yaml) refuseYamlBombs(text);
  let data: unknown;
  try {
    data = yaml ? Bun.YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw invalid(`body is not valid ${yaml ? "YAML" : "JSON"}: ${e instanceof Error ? e.message : e}`);
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
