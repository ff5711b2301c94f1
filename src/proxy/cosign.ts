import { readFileSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import {
  COSIGN_PAYLOAD_MEDIA,
  COSIGN_SIGNATURE_ANNOTATION,
  type CosignKey,
  cosignLayers,
  cosignPayload,
  cosignSignatureTag,
  MAX_COSIGN_LAYERS,
  MAX_COSIGN_MANIFEST_BYTES,
  plausibleSignature,
  readCosignPublicKey,
  signCosign,
  verifyCosign,
} from "../core/cosign.ts";
import { MEDIA, type Reference } from "../core/oci.ts";
import type { Requirement, VerifiedSignature } from "../core/trust-policy.ts";
import type { RegistryClient } from "./registry.ts";

// cosign's signatures in the registry (src/core/cosign.ts has the format): read for a sigstoreSigned requirement,
// written by `push --sign-key` with an ECDSA key. Every read is bounded: the `.sig` manifest (64 KiB), the layers
// looked at (16), each payload (16 KiB, by its descriptor, read exactly), the payload reads' time (10 s).

/** A key file is at most this big (a PEM public key is ~180 bytes; a path naming /dev/zero must not hang). */
const MAX_KEY_FILE_BYTES = 1 << 20;

/**
 * A sigstoreSigned requirement's ECDSA P-256 public keys: PEM files (relative to the policy's directory; a file may
 * hold several) or keyData (base64 of one); or one line saying what is wrong.
 */
export function loadCosignKeys(r: Requirement & { type: "sigstoreSigned" }, base: string): CosignKey[] | string {
  const texts: string[] = [];
  if (r.keyData) texts.push(Buffer.from(r.keyData, "base64").toString("utf8"));
  for (const p of r.keyData ? [] : (r.keyPaths ?? [r.keyPath!])) {
    const path = isAbsolute(p) ? p : join(base, p);
    try {
      const st = statSync(path);
      if (!st.isFile() || st.size > MAX_KEY_FILE_BYTES) return `sigstoreSigned keyPath ${path}: not a key file`;
      texts.push(readFileSync(path, "utf8"));
    } catch (e) {
      return `sigstoreSigned keyPath ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`;
    }
  }
  const keys: CosignKey[] = [];
  for (const text of texts)
    for (const pem of text.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----/g) ?? [""]) {
      const k = readCosignPublicKey(pem);
      if (typeof k === "string") return `sigstoreSigned: ${k}`;
      keys.push(k);
    }
  return keys;
}

/** Payload reads for one image stop after this long (each request has the registry client's own timeout). */
const READ_BUDGET_MS = 10_000;

/**
 * The signatures stored beside `digest` that one of `keys` verifies; `problem` says why none could be read (for
 * the refusal's reason), an unreadable one being as good as absent.
 */
export async function readCosignSignatures(
  registry: RegistryClient,
  ref: Reference,
  digest: string,
  keys: CosignKey[],
): Promise<{ signatures: VerifiedSignature[]; problem?: string }> {
  if (!keys.length) return { signatures: [] };
  const tag = cosignSignatureTag(digest);
  let m: Awaited<ReturnType<RegistryClient["manifestByTag"]>>;
  try {
    m = await registry.manifestByTag(ref, tag, MAX_COSIGN_MANIFEST_BYTES);
  } catch (e) {
    return { signatures: [], problem: `reading ${tag}: ${(e as Error).message}` };
  }
  if (!m) return { signatures: [] };
  const signatures: VerifiedSignature[] = [];
  let problem: string | undefined;
  const started = Date.now();
  for (const l of cosignLayers(m.manifest)) {
    // A registry slow on every payload cannot hold a check for 16 request timeouts.
    if (Date.now() - started > READ_BUDGET_MS) {
      problem ??= `${tag}: reading its payloads took more than ${READ_BUDGET_MS / 1000} s`;
      break;
    }
    if (!plausibleSignature(l.signature)) {
      problem ??= `${tag}: signature annotation is not a base64 ECDSA signature`;
      continue;
    }
    let payload: Uint8Array;
    try {
      payload = await registry.blob(ref, { mediaType: COSIGN_PAYLOAD_MEDIA, digest: l.digest, size: l.size });
    } catch (e) {
      problem ??= `reading ${tag}: ${(e as Error).message}`;
      continue;
    }
    const v = verifyCosign(payload, l.signature, keys);
    if ("error" in v) problem ??= `${tag}: ${v.error}`;
    else signatures.push(v);
  }
  return { signatures, ...(problem && !signatures.length ? { problem } : {}) };
}

/**
 * Signs `digest` (named `reference`) with an ECDSA P-256 private key and stores the signature as cosign does: the
 * payload as a blob, and the `.sig` manifest listing it with the signature annotation.
 */
export async function writeCosignSignature(
  registry: RegistryClient,
  ref: Reference,
  reference: string,
  digest: string,
  privatePem: string,
  passphrase?: string,
): Promise<{ tag: string; fingerprint: string }> {
  const payload = cosignPayload(reference, digest);
  const { signature, fingerprint, publicKey } = signCosign(privatePem, payload, passphrase);
  const layer = await registry.pushBlob(ref, payload);
  const config = await registry.pushBlob(ref, new TextEncoder().encode("{}"));
  const tag = cosignSignatureTag(digest);
  // Earlier signatures stay (another key's, during a rotation), as cosign appends; this key's own earlier one of
  // the same payload goes, and the newest 16 are kept.
  const earlier = (await registry.manifestByTag(ref, tag, MAX_COSIGN_MANIFEST_BYTES))?.manifest.layers ?? [];
  const mineBefore = (l: (typeof earlier)[number]) =>
    l.digest === layer.digest &&
    !("error" in verifyCosign(payload, l.annotations?.[COSIGN_SIGNATURE_ANNOTATION] ?? "", [publicKey]));
  const mine = { mediaType: COSIGN_PAYLOAD_MEDIA, ...layer, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: signature } };
  const layers = [...earlier.filter((l) => l.mediaType === COSIGN_PAYLOAD_MEDIA && !mineBefore(l)), mine].slice(
    -MAX_COSIGN_LAYERS,
  );
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers,
  });
  await registry.putManifest(ref, tag, manifest);
  return { tag, fingerprint };
}
