// Content digests. Modules are cached, named and verified by the sha256 of their bytes.

/** sha256 of the bytes as 64 hex digits. */
export function sha256Hex(bytes: Uint8Array | string): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** The OCI form: `sha256:<hex>`. */
export function ociDigest(bytes: Uint8Array | string): string {
  return `sha256:${sha256Hex(bytes)}`;
}
