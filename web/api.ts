// The console talks to the same REST API as the CLI. Its token travels in the HttpOnly session cookie; every
// change carries the header that proves it comes from this page (see src/manager/api/auth.ts).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T = unknown>(method: string, path: string, body?: unknown, type?: string): Promise<T> {
  const headers: Record<string, string> = { "x-propeller-console": "1" };
  let payload: BodyInit | undefined;
  if (typeof body === "string" && type) {
    payload = body;
    headers["content-type"] = type;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "the manager cannot be reached");
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, `${method} ${path}: ${res.status} (not JSON)`);
  }
  if (!res.ok) {
    const msg = data && typeof data === "object" && "error" in data ? String(data.error) : res.statusText;
    throw new ApiError(res.status, msg);
  }
  return data as T;
}

/** A file's bytes as standard base64, as the API takes a module. */
export async function base64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export const STATES = ["Pending", "Scheduled", "Running", "Completed", "Failed", "Skipped", "Interrupted"];

/** "3 s ago", "5 min ago": heartbeats and events as a person reads them. */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return "";
  if (s < 2) return "just now";
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
