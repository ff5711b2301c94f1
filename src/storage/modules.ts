import { createHash } from "node:crypto";

// How a stored task refers to a module kept once by content (sqlite/modules.ts, kv): `@sha256:<hex>` of the
// module's base64 text. Base64 never starts with "@", so an inline module and a reference cannot be confused.

export const MODULE_REF = "@sha256:";

/** Modules shorter than this stay inline: a reference (72 characters) and a row would cost more than the copy. */
export const SHARE_FROM_CHARS = 256;

export function moduleRef(file: string): string {
  return MODULE_REF + createHash("sha256").update(file).digest("hex");
}
