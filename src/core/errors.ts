import type { ZodError } from "zod";

/**
 * What went wrong, as a kind the caller can act on. The core knows no transport: the REST layer maps a kind to a
 * status code (docs/ARCHITECTURE.md, "Errors"), the CLI to its message and exit code.
 */
export type ErrorKind = "invalid" | "forbidden" | "not_found" | "conflict" | "unavailable";

export class AppError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** Nothing was done: a client may send the same request again (REST: 503 with Retry-After). */
    readonly notActed = false,
  ) {
    super(message);
  }
}

export const invalid = (msg: string) => new AppError("invalid", msg);
export const forbidden = (msg: string) => new AppError("forbidden", msg);
export const notFound = (msg: string) => new AppError("not_found", msg);
export const conflict = (msg: string) => new AppError("conflict", msg);
export const unavailable = (msg: string) => new AppError("unavailable", msg);
/** Refused before anything was done because the process is stopping: to be tried again (its successor takes it). */
export const stopping = (msg: string) => new AppError("unavailable", msg, true);

/** One line naming the field of the first problem: `inputs.2: expected string or number`. */
export function describeZodError(err: ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => {
      const path = i.path.length ? i.path.join(".") : "body";
      if (i.code === "invalid_type" && /received undefined/.test(i.message)) return `${path}: is required`;
      return `${path}: ${i.message}`;
    })
    .join("; ");
}
