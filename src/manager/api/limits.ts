import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { DEFAULT_STREAM_LIMITS, type StreamLimits } from "./streams.ts";

// How much a request may make serve read, route by route. Only the routes that carry a module, a model, a
// dataset or an update (inline, as base64 or multipart) take large bodies (`serve --max-body-mb`); signing in
// takes a few KiB, and every other route a small JSON document. The limit is checked against Content-Length before
// anything is read, and counted while a chunked body is read; authentication runs before it (app.ts), so a
// request without a token never has its body read, except `POST /session`'s few KiB.

export interface ApiLimits {
  /** Body limit of the routes that carry modules, models, datasets and updates. */
  largeBodyBytes: number;
  streams: StreamLimits;
}

export const DEFAULT_LARGE_BODY_BYTES = 100 * 1024 * 1024;
export const SESSION_BODY_BYTES = 4 * 1024;
export const SMALL_BODY_BYTES = 256 * 1024;
export const DEFAULT_API_LIMITS: ApiLimits = {
  largeBodyBytes: DEFAULT_LARGE_BODY_BYTES,
  streams: DEFAULT_STREAM_LIMITS,
};

const LARGE: [string, RegExp][] = [
  ["POST", /^\/tasks$/],
  ["PUT", /^\/tasks\/[^/]+(\/upload)?$/],
  ["POST", /^\/(jobs|workflows)$/],
  ["POST", /^\/fl\/(experiments|models|update|update_cbor|datasets\/[^/]+)$/], // an experiment may carry its task_file
];

/** What Bun itself may accept in one request: the largest route limit, and room for multipart framing. */
export const maxRequestBytes = (l: ApiLimits): number => l.largeBodyBytes + (1 << 20);

const size = (n: number) => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : `${n / 1024} KiB`);

function limit(maxSize: number): MiddlewareHandler {
  const tooLarge = (c: Context) => c.json({ error: `request body exceeds ${size(maxSize)}` }, 413);
  const counted = bodyLimit({ maxSize, onError: tooLarge });
  return (c, next) => {
    // A body with a Content-Length (and no Transfer-Encoding) is judged by its header alone, as hono's bodyLimit
    // judges it, but without touching `Request.body` first: in Bun that makes a ReadableStream of every request
    // body (and a GET's null), a cost each request paid before its text was read.
    const headers = c.req.raw.headers;
    const length = headers.get("content-length");
    if (length !== null && !headers.has("transfer-encoding"))
      return Number.parseInt(length, 10) > maxSize ? Promise.resolve(tooLarge(c)) : next();
    return counted(c, next);
  };
}

/** The body limit for each request, by its route. */
export function bodyLimits(l: ApiLimits): MiddlewareHandler {
  const large = limit(l.largeBodyBytes);
  const session = limit(SESSION_BODY_BYTES);
  const small = limit(SMALL_BODY_BYTES);
  return (c, next) => {
    const { method, path } = c.req;
    // The routes open before a token (sign-in, a proplet's join) read a few KiB at most.
    if (path === "/session" || path === "/join") return session(c, next);
    return (LARGE.some(([m, p]) => m === method && p.test(path)) ? large : small)(c, next);
  };
}
