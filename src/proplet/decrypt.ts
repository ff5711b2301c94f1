import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { decryptLayer, unwrapEncrypted } from "../core/ocicrypt.ts";

// An encrypted module (an ocicrypt layer the proxy passed on in its envelope) is opened here with this proplet's
// private keys: PROPLET_DECRYPTION_KEYS names a PEM file or a directory of them, as ocicrypt's --decryption-key.
// A task marked `encrypted` whose module arrives in the clear is refused: whoever marked it expected otherwise.

/** The PEM texts at `path` (a file, or every file of a directory); read per task, so a key added later counts. */
export function readKeys(path: string | undefined): string[] {
  if (!path) return [];
  try {
    if (!statSync(path).isDirectory()) return [readFileSync(path, "utf8")];
    return readdirSync(path)
      .map((f) => join(path, f))
      .filter((f) => statSync(f).isFile())
      .map((f) => readFileSync(f, "utf8"));
  } catch (e) {
    throw new Error(`PROPLET_DECRYPTION_KEYS ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** The module to run: `bytes` as they are, or decrypted; a reason instead when that cannot be. */
export function openModule(
  bytes: Uint8Array,
  markedEncrypted: boolean,
  keysPath: string | undefined,
): Uint8Array | string {
  const envelope = unwrapEncrypted(bytes);
  if (!envelope) {
    return markedEncrypted
      ? "the task is marked encrypted but its module arrived unencrypted: refusing to run it"
      : bytes;
  }
  const plain = decryptLayer(envelope.data, envelope.meta.annotations, readKeys(keysPath));
  return typeof plain === "string" ? `encrypted module: ${plain}` : plain;
}
