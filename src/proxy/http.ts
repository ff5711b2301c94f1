import { lookup } from "node:dns/promises";
import { isIP } from "node:net";

// The registry client's HTTP layer: redirects followed by hand (credentials never follow to another origin),
// bodies read with a running count against a bound (a Content-Length is a claim, not a limit), and errors that
// carry two texts: the whole story for the operator's log and the CLI, and a short one a proplet may see (no
// address, no port, no system error: a proplet must not learn what the gateway's network looks like).

export class RegistryError extends Error {
  /** What a proplet is told: no host, port or system error text. */
  readonly safe: string;
  constructor(detail: string, safe?: string) {
    super(detail);
    this.safe = safe ?? detail;
  }
}

const MAX_REDIRECTS = 5;

/**
 * Whether a host is this machine's or its network's: loopback, link-local (a cloud's metadata service at
 * 169.254.169.254), private ranges, carrier-grade NAT (100.64/10), `localhost`; IPv4 written as IPv6 too. By
 * the name as written; `leadsInward` resolves a name too.
 */
export function inward(host: string): boolean {
  let h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  // An IPv4 address written as IPv6 (`[::ffff:169.254.169.254]`, which URL writes `[::ffff:a9fe:a9fe]`), or behind
  // NAT64's well-known prefix (`[64:ff9b::a9fe:a9fe]`).
  const mapped = /^(?:::ffff|64:ff9b:):([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(h);
  if (mapped) {
    const n = (Number.parseInt(mapped[1]!, 16) << 16) | Number.parseInt(mapped[2]!, 16);
    h = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
  } else if (h.startsWith("::ffff:")) h = h.slice(7);
  const v4 = /^(\d+)\.(\d+)\.\d+\.\d+$/.exec(h);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return (
      a === 127 ||
      a === 10 ||
      a === 0 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      // Carrier-grade NAT, where some clouds keep their metadata service (100.100.100.200).
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  // IPv6 only (a name such as fcdn.example is not an address): loopback, unspecified, link-local, unique local.
  return h.includes(":") && (h === "::1" || h === "::" || h.startsWith("fe80:") || /^f[cd]/.test(h));
}

/** The addresses a host name resolves to. */
export type Resolve = (host: string) => Promise<string[]>;
const systemResolve: Resolve = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/**
 * Whether a host is inward by its name, or by any address its name resolves to (`blobs.example` pointing at
 * 10.0.0.5 passed the check by name). A name that does not resolve is not: fetch cannot reach it either. The
 * answer can change between this lookup and fetch's own (DNS rebinding); this closes the plain case.
 */
export async function leadsInward(host: string, resolve: Resolve = systemResolve): Promise<boolean> {
  if (inward(host)) return true;
  if (isIP(host.replace(/^\[|\]$/g, ""))) return false;
  try {
    return (await resolve(host)).some(inward);
  } catch {
    return false;
  }
}

export interface FollowOptions {
  /** The whole request's bound, its body's reading included. */
  timeoutMs: number;
  /**
   * The bound on each response's headers: a registry that takes the connection and never answers holds a fetch
   * slot this long, not the whole `timeoutMs` (two such registries stalled every module for 45 s).
   */
  headersMs?: number;
  /** Called for every HTTP request made. */
  count?: () => void;
  resolve?: Resolve;
}

/**
 * `fetch` following at most five redirects; `authorization` goes only to the origin of `url` (a blob store a
 * registry redirects to gets none). A redirect may not lead into the gateway's machine or network unless `url`
 * is there itself, nor from https down to http.
 */
export async function fetchFollowing(
  url: string,
  init: RequestInit & { headers: Headers },
  o: FollowOptions,
): Promise<Response> {
  const resolve = o.resolve ?? systemResolve;
  const origin = new URL(url).origin;
  const whole = AbortSignal.timeout(o.timeoutMs);
  let at = url;
  for (let hop = 0; ; hop++) {
    const headers = new Headers(init.headers);
    if (new URL(at).origin !== origin) headers.delete("authorization");
    o.count?.();
    const res = await answered(at, { ...init, headers, redirect: "manual" }, whole, o.headersMs);
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || res.status === 304 || !location) return res;
    await res.body?.cancel().catch(() => {});
    if (hop >= MAX_REDIRECTS)
      throw new RegistryError(`more than ${MAX_REDIRECTS} redirects from ${url}`, "too many redirects");
    const next = new URL(location, at);
    if (next.protocol !== "http:" && next.protocol !== "https:")
      throw new RegistryError(`redirect from ${at} to ${next.protocol} refused`, "redirect refused");
    if (new URL(at).protocol === "https:" && next.protocol === "http:")
      throw new RegistryError(`redirect from ${at} to ${next.origin} refused: from https to http`, "redirect refused");
    // A registry elsewhere may send the proxy to a blob store anywhere, but not into the gateway's own machine or
    // network (a cloud's metadata service, a local admin port): only a registry there itself may.
    if ((await leadsInward(next.hostname, resolve)) && !(await leadsInward(new URL(url).hostname, resolve)))
      throw new RegistryError(`redirect from ${at} to ${next.host} refused: an address inside`, "redirect refused");
    at = next.href;
  }
}

/** One fetch, aborted by `whole`, or when its headers take longer than `headersMs`. */
async function answered(url: string, init: RequestInit, whole: AbortSignal, headersMs?: number): Promise<Response> {
  if (!headersMs) return fetch(url, { ...init, signal: whole });
  const first = new AbortController();
  const timer = setTimeout(
    () => first.abort(new DOMException(`no answer within ${headersMs / 1000}s`, "TimeoutError")),
    headersMs,
  );
  try {
    return await fetch(url, { ...init, signal: AbortSignal.any([whole, first.signal]) });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The body, read with a running count: more than `limit` bytes aborts the read at once, whatever Content-Length
 * said. With `exact`, a shorter body is an error too (a descriptor's size is what the content must be).
 */
export async function readBounded(res: Response, limit: number, what: string, exact = false): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw new RegistryError(
      `${what}: ${declared} bytes announced, more than ${limit}`,
      `${what} is larger than ${limit} bytes`,
    );
  }
  const parts: Uint8Array[] = [];
  // Of a known size (a descriptor's), the body goes straight into one buffer of it: gathered in parts and then
  // joined, a module was held twice over at the end of its read.
  const whole = exact ? new Uint8Array(limit) : undefined;
  let size = 0;
  const reader = res.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.length > limit) {
        await reader.cancel().catch(() => {});
        throw new RegistryError(`${what}: more than ${limit} bytes`, `${what} is larger than ${limit} bytes`);
      }
      if (whole) whole.set(value, size);
      else parts.push(value);
      size += value.length;
    }
  }
  if (exact && size !== limit)
    throw new RegistryError(
      `${what}: ${size} bytes, its descriptor says ${limit}`,
      `${what} is shorter than its descriptor says`,
    );
  if (whole) return whole;
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A thrown fetch error (refused, reset, timed out) as a RegistryError that names the host for the log only. */
export function unreachable(host: string, e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  const why = e instanceof Error ? e.message : String(e);
  const timeout = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError");
  // A registry that took the connection but never answered is slow, not unreachable: said so.
  if (timeout) return new RegistryError(`${host} did not answer in time: ${why}`, "registry timed out");
  return new RegistryError(`cannot reach ${host}: ${why}`, "registry unreachable");
}
