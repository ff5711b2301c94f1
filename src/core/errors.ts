import type { ZodError } from "zod";

/** Client mistakes carry an HTTP status so the API layer can map them without string matching. */
export class AppError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 413 | 503,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (msg: string) => new AppError(400, msg);
export const notFound = (msg: string) => new AppError(404, msg);
export const conflict = (msg: string) => new AppError(409, msg);

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
