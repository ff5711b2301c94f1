import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { describeZodError, type ErrorKind, invalid } from "../../core/errors.ts";
import { jsonShapeProblem, MAX_JSON_DEPTH } from "../../core/json.ts";
import { type Page, PageQuery } from "../../core/page.ts";
import { yamlAliasAt, yamlExpansion } from "../../core/yaml.ts";

// What every route shares: bodies and queries validated with the core schemas, paged listings, and the one place
// where an error kind becomes an HTTP status.

/** No request body needs more; deeper JSON only costs stack when it is stored or sent on. */

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
 * A job or workflow is small and written by hand: YAML over 1 MiB, or with anchors or aliases (`&name`, `*name`,
 * which can fan a few lines out into billions of nodes to walk), is refused before it is parsed (core/yaml.ts).
 */
function refuseYamlBombs(text: string): void {
  if (text.length > MAX_YAML_BYTES) throw invalid(`a YAML body is at most ${MAX_YAML_BYTES >> 20} MiB`);
  const at = yamlAliasAt(text);
  if (at) {
    throw invalid(
      `YAML anchors and aliases are not accepted (${JSON.stringify(at.token.slice(0, 40))} at line ${at.line}, ` +
        `column ${at.column}): write the value out, or quote text that starts with & or *`,
    );
  }
}

/** A JSON body (or, with `yaml`, a YAML one: jobs and workflows as a person writes them) against its schema. */
export async function jsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  /** `typos`: a check of the body as sent, before the schema drops what it does not know (core/nearest.ts). */
  opts: { yaml?: boolean; typos?: (data: unknown) => string | undefined } = {},
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
  // Whatever the text check missed, an alias shows in what was parsed.
  const expanded = yaml ? yamlExpansion(data, text.length) : undefined;
  if (expanded) throw invalid(`YAML anchors and aliases are not accepted: ${expanded}`);
  const typo = opts.typos?.(data);
  if (typo) throw invalid(typo);
  return checked(data, schema);
}

/**
 * A decoded body (JSON, YAML, CBOR) against its schema: bounded nesting and no prototype keys (`__proto__`,
 * `constructor`, `prototype`, which zod's records would drop or obey), then the schema; 400 naming the field.
 */
export function checked<S extends z.ZodType>(data: unknown, schema: S): z.output<S> {
  const problem = jsonShapeProblem(data, MAX_JSON_DEPTH);
  if (problem) throw invalid(problem);
  const r = schema.safeParse(data);
  if (!r.success) throw invalid(describeZodError(r.error));
  return r.data;
}

/** A paged listing: `?offset&limit` in, `{offset, limit, total, <key>: [...]}` out. */
export function paged<T>(c: Context, key: string, list: (offset: number, limit: number) => Page<T>): Response {
  const q = PageQuery.safeParse({ offset: single(c, "offset"), limit: single(c, "limit") });
  if (!q.success) throw invalid(q.error.issues.map((i) => i.message).join("; "));
  const r = list(q.data.offset, q.data.limit);
  return c.json({ offset: r.offset, limit: r.limit, total: r.total, [key]: r.items });
}

/** A query parameter given at most once: `?offset=1&offset=2` is refused rather than one picked silently. */
function single(c: Context, name: string): string | undefined {
  if ((c.req.queries(name)?.length ?? 0) > 1) throw invalid(`${name}: give it once, not several times`);
  return c.req.query(name);
}

export function query<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  const r = schema.safeParse(single(c, name) || undefined);
  if (!r.success) throw invalid(`${name}: ${r.error.issues[0]!.message}`);
  return r.data;
}
