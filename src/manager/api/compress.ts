import { promisify } from "node:util";
import { deflate, deflateSync, gzip, gzipSync } from "node:zlib";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

// JSON answers compressed as the client accepts (gzip, else deflate), when they are worth it. hono/compress skips
// a body under its threshold only when the answer carries a Content-Length, which `c.json` answers do not: every
// answer, a 40-byte `{"id":…}` too, went through a CompressionStream, and its stream plumbing was about a quarter
// of serve's CPU in the dispatch benchmark (scripts/bench/dispatch.ts --profile). Every JSON answer of the API is
// built in memory (streams are NDJSON or event streams, never compressed here), so it is read whole and compressed
// in one call when it is at least THRESHOLD bytes.

const THRESHOLD = 1024;
/**
 * Past this, compressed off the event loop: a task's whole results may be megabytes, and gzipSync of 12.8 MB held
 * serve's loop for ~250 ms here (heartbeats, other requests waiting); zlib's own thread lets the loop run on.
 */
const SYNC_MAX = 64 * 1024;
const gzipAsync = promisify(gzip);
const deflateAsync = promisify(deflate);
const NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;
const VARY_ACCEPT_ENCODING = /(?:^|,)\s*accept-encoding\s*(?:,|$)/i;

type Encoding = "gzip" | "deflate" | undefined;
/** Choices by Accept-Encoding header: clients send one of a few; bounded, as a header is the client's to choose. */
const chosen = new Map<string, Encoding>();
const CHOSEN_MAX = 64;

/** The encoding to answer in: gzip before deflate, each only if the client accepts it (q > 0). */
export function chooseEncoding(accept: string | undefined): Encoding {
  if (!accept) return undefined;
  if (chosen.has(accept)) return chosen.get(accept);
  const e = parseAccept(accept);
  if (chosen.size >= CHOSEN_MAX) chosen.clear();
  chosen.set(accept, e);
  return e;
}

function parseAccept(accept: string): Encoding {
  const q = new Map<string, number>();
  for (const part of accept.split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const v = qp ? Number(qp.slice(2)) : 1;
    if (name) q.set(name, Number.isFinite(v) ? v : 0);
  }
  const of = (enc: string) => q.get(enc) ?? q.get("*") ?? 0;
  const gzip = of("gzip");
  const deflate = of("deflate");
  if (gzip <= 0 && deflate <= 0) return undefined;
  return gzip >= deflate ? "gzip" : "deflate";
}

/** JSON answers `jsonAnswer` built and found under THRESHOLD: nothing to size or compress. */
const small = new WeakSet<Response>();

/**
 * `c.json`, sized as it is built: the answers of a task's way (create, start, a task) are a few hundred bytes, and
 * sizing a finished Response means copying and reading it. One under THRESHOLD is marked, and passes
 * `compressAnswer` untouched; a larger one is left to it.
 */
export function jsonAnswer(c: Context, value: unknown, status: ContentfulStatusCode = 200): Response {
  const text = JSON.stringify(value);
  const res = c.body(text, status, { "Content-Type": "application/json" });
  if (Buffer.byteLength(text) < THRESHOLD) small.add(res);
  return res;
}

/** Once the route has answered (app.ts): `c.res` compressed as the client accepts, when worth it. */
export async function compressAnswer(c: Context): Promise<void> {
  const res = c.res;
  // The content type first: most answers that are not JSON end here.
  if (
    !res.headers.get("content-type")?.startsWith("application/json") ||
    res.status === 206 ||
    c.req.method === "HEAD" ||
    res.headers.has("content-encoding") ||
    NO_TRANSFORM.test(res.headers.get("cache-control") ?? "")
  ) {
    return;
  }
  const vary = res.headers.get("vary");
  if (vary !== "*" && !VARY_ACCEPT_ENCODING.test(vary ?? "")) {
    res.headers.set("vary", vary ? `${vary}, Accept-Encoding` : "Accept-Encoding");
  }
  const encoding = chooseEncoding(c.req.header("accept-encoding"));
  if (!encoding || small.has(res)) return;
  // Sized on a copy, so a small answer (every answer of a task's way) goes out as the very Response the route
  // built: reading its bytes and building another cost more than the rest of this middleware. Neither
  // `res.body` (a ReadableStream made on demand) nor an array buffer is asked of it; an empty body sizes to 0.
  if (Buffer.byteLength(await res.clone().text()) < THRESHOLD) return;
  const body = new Uint8Array(await res.arrayBuffer());
  const packed =
    body.byteLength <= SYNC_MAX
      ? encoding === "gzip"
        ? gzipSync(body)
        : deflateSync(body)
      : await (encoding === "gzip" ? gzipAsync(body) : deflateAsync(body));
  const headers = new Headers(res.headers);
  headers.delete("content-length");
  headers.set("content-encoding", encoding);
  const etag = headers.get("etag");
  if (etag && !etag.startsWith("W/")) headers.set("etag", `W/${etag}`);
  c.res = new Response(packed, { status: res.status, statusText: res.statusText, headers });
}
