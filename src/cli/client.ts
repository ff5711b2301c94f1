import { defineCommand } from "citty";
import { action, env } from "./args.ts";

// HTTP client of the manager's REST API, shared by every client subcommand.

export const DEFAULT_URL = "http://localhost:7070";

export const urlArg = {
  url: { type: "string", description: `manager URL (env PROPELLER_URL)`, default: env("PROPELLER_URL") ?? DEFAULT_URL },
  json: { type: "boolean", description: "print JSON instead of a table", default: false },
} as const;

export class ApiError extends Error {}

export async function api<T = unknown>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
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
        await api(args.url, method, path(args.id));
        process.stdout.write("ok\n");
      }),
  });
}
