import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { action, env } from "./args.ts";

// HTTP client of the manager's REST API, shared by every client subcommand.

export const DEFAULT_URL = "http://localhost:7070";

export const urlArg = {
  url: { type: "string", description: `manager URL (env PROPELLER_URL)`, default: env("PROPELLER_URL") ?? DEFAULT_URL },
  token: {
    type: "string",
    description: "bearer token (env PROPELLER_TOKEN); for a serve on this machine, its data dir's admin.token",
    default: env("PROPELLER_TOKEN"),
  },
  json: { type: "boolean", description: "print JSON instead of a table", default: false },
} as const;

/** Where a client command talks to. */
export interface Conn {
  url: string;
  token?: string;
}

export class ApiError extends Error {}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The token to send: the one given, else, for a manager on this machine, the admin token `serve` wrote into its
 * data dir (PROPELLER_DATA_DIR, default ~/.propeller), as kubectl finds k3s's kubeconfig.
 */
export function tokenFor(conn: Conn): string | undefined {
  if (conn.token) return conn.token;
  let host: string;
  try {
    host = new URL(conn.url).hostname;
  } catch {
    return undefined;
  }
  if (!LOCAL_HOSTS.has(host)) return undefined;
  const file = join(env("PROPELLER_DATA_DIR") ?? join(homedir(), ".propeller"), "admin.token");
  return existsSync(file) ? readFileSync(file, "utf8").trim() || undefined : undefined;
}

export function authHeaders(conn: Conn): Record<string, string> {
  const token = tokenFor(conn);
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function api<T = unknown>(conn: Conn, method: string, path: string, body?: unknown): Promise<T> {
  const base = conn.url;
  const init: RequestInit = { method, headers: authHeaders(conn) };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...authHeaders(conn), "content-type": "application/json" };
  }
  let res: Response;
  try {
    res = await fetch(new URL(path, base), init);
  } catch (e) {
    throw new ApiError(
      `cannot reach the manager at ${base}: ${e instanceof Error ? e.message : e} (is \`propeller serve\` running? set --url or PROPELLER_URL)`,
    );
  }
  const text = await res.text();
  let data: unknown;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const msg =
      data && typeof data === "object" && "error" in data
        ? String((data as { error: unknown }).error)
        : text || res.statusText;
    throw new ApiError(`${method} ${path}: ${res.status} ${msg}`);
  }
  return data as T;
}

/** A subcommand that sends one request about one resource and prints `ok`. */
export function okCommand(description: string, what: string, method: string, path: (id: string) => string) {
  return defineCommand({
    meta: { description },
    args: { id: { type: "positional", description: `${what} id`, required: true }, ...urlArg },
    run: ({ args }) =>
      action(async () => {
        await api(args, method, path(args.id));
        process.stdout.write("ok\n");
      }),
  });
}
