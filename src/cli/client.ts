import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { defineCommand } from "citty";
import { action, defaultDataDir, env, int, UsageError } from "./args.ts";

// HTTP client of the manager's REST API, shared by every client subcommand.

export const DEFAULT_URL = "http://localhost:7070";

export const urlArg = {
  url: {
    type: "string",
    alias: ["m", "manager-url"] as string[],
    description: "manager URL (env PROPELLER_URL); -m/--manager-url as upstream's CLI",
    default: env("PROPELLER_URL") ?? DEFAULT_URL,
  },
  token: {
    type: "string",
    description: "bearer token (env PROPELLER_TOKEN); for a serve on this machine, its data dir's admin.token",
    default: env("PROPELLER_TOKEN"),
  },
  "ca-cert": {
    type: "string",
    description: "PEM CA to trust for an https:// manager (env PROPELLER_CA_CERT), e.g. from `propeller certs create`",
    default: env("PROPELLER_CA_CERT"),
  },
  json: { type: "boolean", description: "print JSON instead of a table", default: false },
} as const;

/**
 * A manager URL as typed: `127.0.0.1:7070` (no scheme) means http. Another scheme is refused here, naming what the
 * URL should be: fetch's own words for `mqtt://` were "protocol must be http:, https: or s3:", followed by the
 * hint "is `propeller serve` running?", while serve was running and the URL was the broker's.
 */
export function managerUrl(url: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return `http://${url}`;
  if (scheme === "http" || scheme === "https") return url;
  const broker = /^(mqtts?|wss?|tcp|ssl)$/.test(scheme) ? `a ${scheme}:// URL is the MQTT broker's; ` : "";
  throw new ApiError(
    `--url ${url}: ${broker}the CLI talks to the manager's REST API at an http:// or https:// URL (serve's --http-port, default 7070), e.g. --url http://localhost:7070`,
  );
}

/**
 * A route of the manager at `base`, kept under the base's own path: a manager behind a reverse proxy at
 * `https://gw/propeller/` is asked `https://gw/propeller/tasks` (`new URL("/tasks", base)` dropped `/propeller`).
 */
export function endpoint(base: string, route: string): URL {
  const u = new URL(managerUrl(base));
  return new URL(`${u.origin}${u.pathname.replace(/\/+$/, "")}${route}`);
}

/** Where a client command talks to. */
export interface Conn {
  url: string;
  token?: string;
  "ca-cert"?: string;
}

/** fetch options for the connection: the site CA, when one is given. */
export function tlsInit(conn: Conn): { tls?: { ca: string } } {
  const file = conn["ca-cert"];
  if (!file) return {};
  try {
    return { tls: { ca: readFileSync(file, "utf8") } };
  } catch (e) {
    throw new ApiError(`--ca-cert ${file}: ${e instanceof Error ? e.message : e}`);
  }
}

export class ApiError extends Error {}

/** The manager could not be reached at all (refused, reset, timed out): a wait may try again (serve restarting). */
export class Unreachable extends ApiError {}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The token to send: the one given, else, for a manager on this machine, the admin token `serve` wrote into its
 * data dir (PROPELLER_DATA_DIR, default ~/.propeller), as kubectl finds k3s's kubeconfig.
 */
export function tokenFor(conn: Conn): string | undefined {
  if (conn.token) return conn.token;
  const file = localTokenFile(conn);
  return file && existsSync(file) ? readFileSync(file, "utf8").trim() || undefined : undefined;
}

/** Where a serve on this machine keeps its admin token, for a manager URL on loopback. */
function localTokenFile(conn: Conn): string | undefined {
  let host: string;
  try {
    host = new URL(managerUrl(conn.url)).hostname;
  } catch {
    return undefined;
  }
  return LOCAL_HOSTS.has(host) ? join(env("PROPELLER_DATA_DIR") ?? defaultDataDir(), "admin.token") : undefined;
}

/**
 * A 401 names no path of the server's disk; for a manager on this machine, the CLI says where it looked and what
 * it found there: no file (serve has another data dir, or a restored store, whose tokens came with it and were
 * never written to a file), or a token the manager refused (another store's, or revoked).
 */
function refusedHint(conn: Conn, status: number): string {
  const file = status === 401 && !conn.token ? localTokenFile(conn) : undefined;
  if (!file) return "";
  const dir = dirname(file);
  if (existsSync(file)) {
    return ` (the CLI sent the admin token in ${file} and it was refused: it is another store's, or revoked; for serve's other --data-dir, set PROPELLER_DATA_DIR to it, or give --token)`;
  }
  return ` (the CLI looked for serve's admin token in ${file}: there is none; for serve's other --data-dir, set PROPELLER_DATA_DIR to it, or give --token; a restored store writes none: copy the site's admin.token into ${dir}, or stop serve and run \`propeller tokens create --data-dir ${dir}\`)`;
}

export function authHeaders(conn: Conn): Record<string, string> {
  const token = tokenFor(conn);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Why a request did not reach the manager, with what to do about it. */
export function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // An https:// URL for a serve without --tls-cert: Bun says "TLS handshake failed" (EPROTO), and the CA is not it.
  if (/handshake failed|EPROTO|wrong version number/i.test(msg)) {
    return `${msg} (a serve started without --tls-cert speaks plain HTTP: use http://; with TLS, check the port is serve's --http-port)`;
  }
  if (/certificate|self.signed|SSL|TLS/i.test(msg)) {
    return `${msg} (trust the site CA with --ca-cert or PROPELLER_CA_CERT, e.g. certs/ca.pem from \`propeller certs create\`)`;
  }
  // Closed without an answer: what the MQTT broker does with an HTTP request (a --url with serve's --mqtt-port).
  if (/ECONNRESET|closed unexpectedly/i.test(msg)) {
    return `${msg} (it closed the connection without an HTTP answer: is the port serve's --http-port, default 7070, and not its MQTT port, default 1883?)`;
  }
  return `${msg} (is \`propeller serve\` running? set --url or PROPELLER_URL)`;
}

/**
 * A `503` with `Retry-After` is a manager that did not act: a stand-by with no active manager to forward to
 * (during a hand-over; it marks that with `propeller-not-acted`) or a manager shedding load. The CLI waits as
 * told and tries again, for at most RETRY_BUDGET_MS in all, saying so on stderr. Idempotent methods are retried
 * on any such 503; POST and PATCH only when the answer says nothing was done (a stand-by whose forward to the
 * active manager broke off cannot know whether it acted, so that one is not retried).
 */
export const RETRY_BUDGET_MS = 30_000;
const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

/** How long a 503 asks to wait (seconds or an HTTP date), or undefined when it asks nothing or is not a 503. */
function retryAfterMs(res: Response, method: string): number | undefined {
  const h = res.headers.get("retry-after");
  if (res.status !== 503 || h === null) return undefined;
  if (!IDEMPOTENT.has(method) && res.headers.get("propeller-not-acted") !== "true") return undefined;
  const secs = Number(h);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(h) - Date.now();
  return Math.max(Number.isFinite(ms) ? ms : 1000, 200);
}

async function fetchRetrying(url: URL, init: RequestInit, method: string): Promise<Response> {
  const deadline = Date.now() + RETRY_BUDGET_MS;
  for (;;) {
    const res = await fetch(url, init);
    const wait = retryAfterMs(res, method);
    if (wait === undefined || Date.now() + wait > deadline) return res;
    await res.body?.cancel();
    const s = Math.round(wait / 100) / 10;
    process.stderr.write(`manager unavailable (hand-over?), retrying in ${s} s\n`);
    await Bun.sleep(wait);
  }
}

export async function api<T = unknown>(conn: Conn, method: string, path: string, body?: unknown): Promise<T> {
  const base = managerUrl(conn.url);
  const init: RequestInit = { method, headers: authHeaders(conn), ...tlsInit(conn) };
  if (body instanceof FormData) init.body = body;
  else if (body instanceof Uint8Array) {
    init.body = body;
    init.headers = { ...authHeaders(conn), "content-type": "application/cbor" };
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...authHeaders(conn), "content-type": "application/json" };
  }
  let res: Response;
  try {
    res = await fetchRetrying(endpoint(base, path), init, method);
  } catch (e) {
    throw new Unreachable(`cannot reach the manager at ${base}: ${reason(e)}`);
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    // Not our JSON: a proxy's or another server's page. Say what it was, not the page itself.
    const type = res.headers.get("content-type")?.split(";")[0] ?? "no content type";
    throw new ApiError(
      `${method} ${path}: ${res.status} ${res.statusText}: ${base} answered with ${type} (${text.length} bytes), not a Propeller manager's JSON`,
    );
  }
  if (!res.ok) {
    const msg =
      data && typeof data === "object" && "error" in data ? String((data as { error: unknown }).error) : res.statusText;
    throw new ApiError(`${method} ${path}: ${res.status} ${msg}${refusedHint(conn, res.status)}`);
  }
  return data as T;
}

/** Where the CLI lists each kind of resource to resolve an id prefix: list path, the array's key, the id field. */
const LISTS = {
  task: ["/tasks", "tasks", "id", true],
  proplet: ["/proplets", "proplets", "id", true],
  job: ["/jobs", "jobs", "job_id", true],
  workflow: ["/workflows", "workflows", "workflow_id", true],
  entity: ["/entities", "entities", "id", false],
  experiment: ["/fl/experiments", "experiments", "experiment_id", false],
  "join token": ["/join-tokens", "join_tokens", "id", false],
} as const;
export type IdKind = keyof typeof LISTS;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * An id as typed: a whole id is used as is; a prefix becomes the one id of that kind starting with it, as git
 * does with commits; a name, the one of that kind with that name (`jobs get nightly`). A word that could be
 * several (a prefix several ids share, a name several have, one's name and another's prefix) is an error naming
 * them; one no id has is sent unchanged (the manager's 404 says so, and names it accepts keep working).
 */
export async function resolveId(conn: Conn, kind: IdKind, given: string): Promise<string> {
  // An empty one (an unset shell variable) is the start of every id: refused, not "ambiguous" with them all listed.
  if (!given.trim()) throw new UsageError(`the ${kind} id is empty: give an id, a unique start of one, or a name`);
  // The manager resolves task prefixes itself (manager/tasks.ts resolveId), without listing every task here.
  if (UUID.test(given) || kind === "task") return given;
  const [path, key, field, isPaged] = LISTS[kind];
  const ids: string[] = [];
  const named: string[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api<Record<string, unknown>>(
      conn,
      "GET",
      isPaged ? `${path}?offset=${offset}&limit=1000` : path,
    );
    const items = (page[key] ?? []) as Record<string, unknown>[];
    ids.push(...items.map((i) => String(i[field])));
    named.push(...items.filter((i) => i.name === given).map((i) => String(i[field])));
    if (!isPaged || items.length < 1000 || offset > 1e6) break;
  }
  if (ids.includes(given)) return given;
  const hits = [...new Set([...ids.filter((id) => id.startsWith(given)), ...named])];
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1) {
    const which = named.length ? `${kind}s have that name or an id starting with it` : "ids start with it";
    throw new ApiError(`${kind} id ${given} is ambiguous: ${hits.length} ${which}: ${hits.sort().join(", ")}`);
  }
  return given;
}

/** A Server-Sent Events stream from the manager, one `{event, data}` per message, until the server ends it. */
export async function* sse(
  conn: Conn,
  path: string,
  /** Aborted: the stream closes, even while a read waits for an event (a generator's return() waits for it). */
  signal?: AbortSignal,
): AsyncGenerator<{ event: string; data: string }> {
  const base = managerUrl(conn.url);
  let res: Response;
  try {
    res = await fetch(endpoint(base, path), { headers: authHeaders(conn), ...tlsInit(conn), signal });
  } catch (e) {
    throw new Unreachable(`cannot reach the manager at ${base}: ${reason(e)}`);
  }
  if (!res.ok || !res.body) {
    const text = await res.text();
    let msg = res.statusText;
    try {
      msg = String(JSON.parse(text).error ?? msg);
    } catch {}
    throw new ApiError(`GET ${path}: ${res.status} ${msg}${refusedHint(conn, res.status)}`);
  }
  let buf = "";
  for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
      const lines = buf.slice(0, end).split("\n");
      buf = buf.slice(end + 2);
      const field = (name: string) =>
        lines
          .filter((l) => l.startsWith(`${name}:`))
          .map((l) => l.slice(name.length + 1).replace(/^ /, ""))
          .join("\n");
      const data = field("data");
      if (data) yield { event: field("event") || "message", data };
    }
  }
}

/** A subcommand that sends one request about one resource and prints `ok`. */
/** What a command that changes something prints: --json is always JSON, the answer or else {"ok": true}. */
export const okLine = (json: boolean | undefined, answer?: unknown): string =>
  json ? `${JSON.stringify(answer ?? { ok: true })}\n` : "ok\n";

export function okCommand(
  description: string,
  what: IdKind,
  method: string,
  path: (id: string) => string,
  /** What to say on stderr about the answer, besides "ok". */
  note?: (answer: Record<string, unknown>, id: string) => string | undefined,
) {
  return defineCommand({
    meta: { description },
    args: {
      id: { type: "positional", description: `${what} id (or a unique prefix of it)`, required: true },
      ...urlArg,
    },
    run: ({ args }) =>
      action(async () => {
        const id = await resolveId(args, what, args.id);
        const r = await api<Record<string, unknown>>(args, method, path(encodeURIComponent(id)));
        process.stdout.write(okLine(args.json, r));
        const said = args.json ? undefined : note?.(r, id);
        if (said) process.stderr.write(`${said}\n`);
      }),
  });
}

/** A subcommand that prints one paged listing about one resource as JSON (samples, histories). */
export function pagedCommand(description: string, what: IdKind, key: string, path: (id: string) => string) {
  return defineCommand({
    meta: { description },
    args: {
      id: { type: "positional", description: `${what} id (or a unique prefix of it)`, required: true },
      offset: { type: "string", alias: ["o"] as string[], default: "0" },
      limit: { type: "string", alias: ["l"] as string[], default: "100" },
      ...urlArg,
    },
    run: ({ args }) =>
      action(async () => {
        const q = `offset=${int("offset", args.offset, 0, 1e9)}&limit=${int("limit", args.limit, 1, 1000)}`;
        const page = await api<Record<string, unknown>>(
          args,
          "GET",
          `${path(encodeURIComponent(await resolveId(args, what, args.id)))}?${q}`,
        );
        process.stdout.write(`${JSON.stringify(args.json ? page : page[key], null, 2)}\n`);
      }),
  });
}
