import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import type { z } from "zod";
import { sha256Hex } from "./digest.ts";
import type { Manifest } from "./oci.ts";
import { claimBytes, signedClaim } from "./simple-signing.ts";
import type { VerifiedSignature } from "./trust-policy.ts";

// cosign's key-based signatures (sigstore/cosign specs/SIGNATURE_SPEC.md), the format a `sigstoreSigned`
// requirement reads: beside the image, tag `sha256-<hex>.sig` in the same repository names an OCI manifest whose
// layers are simple-signing JSON payloads (`critical.type` "cosign container image signature"), each with its
// ECDSA P-256 / SHA-256 signature (ASN.1 DER, base64) in the layer annotation `dev.cosignproject.cosign/signature`.
// Pure: keys and payloads arrive as bytes, the registry reads are proxy/cosign.ts's.

export const COSIGN_PAYLOAD_MEDIA = "application/vnd.dev.cosign.simplesigning.v1+json";
export const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
const COSIGN_TYPE = "cosign container image signature";
/** Layers looked at per signature manifest, and a payload's bytes (cosign's are ~250 bytes). */
export const MAX_COSIGN_LAYERS = 16;
export const MAX_COSIGN_PAYLOAD_BYTES = 16 * 1024;
/** The `.sig` manifest's bytes at most: 16 layers with their annotations fit many times over. */
export const MAX_COSIGN_MANIFEST_BYTES = 64 * 1024;

/** The tag a digest's signatures are stored under: `sha256-<hex>.sig`. */
export function cosignSignatureTag(digest: string): string {
  return `${digest.replace(":", "-")}.sig`;
}

/** A public key a sigstoreSigned requirement trusts, with its fingerprint (sha256 of the SPKI, upper-case hex). */
export interface CosignKey {
  key: KeyObject;
  fingerprint: string;
}

/** An ECDSA P-256 public key from PEM (`-----BEGIN PUBLIC KEY-----`, as `cosign generate-key-pair` writes), or why not. */
export function readCosignPublicKey(pem: string): CosignKey | string {
  if (!pem.includes("-----BEGIN PUBLIC KEY-----")) return "not a PEM public key (-----BEGIN PUBLIC KEY-----)";
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    return `not a public key: ${(e as Error).message}`;
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1")
    return `only ECDSA P-256 keys are supported (this one is ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ""})`.trim();
  return { key, fingerprint: sha256Hex(key.export({ type: "spki", format: "der" })).toUpperCase() };
}

const CosignPayload = signedClaim(COSIGN_TYPE);

/** The payload cosign signs for `digest` (its bytes are what the signature covers, as written). */
export function cosignPayload(reference: string, digest: string): Uint8Array {
  return claimBytes(COSIGN_TYPE, reference, digest, null);
}

/** Whether an annotation can be an ECDSA P-256 signature (DER, base64: ~96 characters), before any payload is read. */
export function plausibleSignature(b64: string): boolean {
  return b64.length <= 512 && /^[A-Za-z0-9+/]+={0,2}$/.test(b64.trim());
}

/** A payload and its base64 signature verified by one of `keys`, read as what it signs; or why not. */
export function verifyCosign(
  payload: Uint8Array,
  signatureB64: string,
  keys: CosignKey[],
): VerifiedSignature | { error: string } {
  if (payload.length > MAX_COSIGN_PAYLOAD_BYTES) return { error: "payload larger than 16 KiB" };
  if (!plausibleSignature(signatureB64)) return { error: "signature annotation is not a base64 ECDSA signature" };
  const sig = Buffer.from(signatureB64.trim(), "base64");
  const signer = keys.find((k) => {
    try {
      return verify("sha256", payload, { key: k.key, dsaEncoding: "der" }, sig);
    } catch {
      return false;
    }
  });
  if (!signer) return { error: "signature not verified by a trusted key" };
  let p: z.infer<typeof CosignPayload>;
  try {
    const r = CosignPayload.safeParse(JSON.parse(new TextDecoder().decode(payload)));
    if (!r.success) return { error: "payload is not a cosign simple-signing payload" };
    p = r.data;
  } catch {
    return { error: "payload is not JSON" };
  }
  return {
    fingerprint: signer.fingerprint,
    digest: p.critical.image["docker-manifest-digest"],
    identity: p.critical.identity["docker-reference"],
  };
}

/**
 * A detached signature over a module's bytes as `cosign sign-blob --key` writes it (base64 of the DER ECDSA
 * signature over the blob itself), or that DER as openssl writes it, verified by one of `keys`: it names the
 * module's digest and no image.
 */
export function verifyCosignBlob(
  blob: Uint8Array,
  signature: Uint8Array,
  digest: string,
  keys: CosignKey[],
): VerifiedSignature | undefined {
  // `openssl dgst -sha256 -sign` writes the DER itself (a SEQUENCE: 0x30, then the length of the rest), cosign its
  // base64: both are taken (base64 text never starts with byte 0x30 followed by its own length).
  const der = signature.length <= 80 && signature[0] === 0x30 && signature[1] === signature.length - 2;
  const b64 = der ? "" : new TextDecoder().decode(signature.subarray(0, 1024)).trim();
  if (!der && (signature.length > 1024 || !plausibleSignature(b64))) return undefined;
  const sig = der ? Buffer.from(signature) : Buffer.from(b64, "base64");
  const signer = keys.find((k) => {
    try {
      return verify("sha256", blob, { key: k.key, dsaEncoding: "der" }, sig);
    } catch {
      return false;
    }
  });
  return signer ? { fingerprint: signer.fingerprint, digest, identity: "" } : undefined;
}

/** The signature layers of a `.sig` manifest worth fetching: simple-signing payloads with a signature, bounded. */
export function cosignLayers(m: Manifest): { digest: string; size: number; signature: string }[] {
  const out: { digest: string; size: number; signature: string }[] = [];
  for (const l of m.layers ?? []) {
    if (out.length >= MAX_COSIGN_LAYERS) break;
    const signature = l.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    if (l.mediaType !== COSIGN_PAYLOAD_MEDIA || !signature || l.size > MAX_COSIGN_PAYLOAD_BYTES) continue;
    out.push({ digest: l.digest, size: l.size, signature });
  }
  return out;
}

/** A fresh ECDSA P-256 key pair: PKCS#8 private key (encrypted with AES-256-CBC when a passphrase is given), SPKI public key, PEM. */
export function generateCosignKeyPair(passphrase?: string): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", {
    namedCurve: "P-256",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: passphrase
      ? { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase }
      : { type: "pkcs8", format: "pem" },
  });
  return { privatePem: privateKey, publicPem: publicKey };
}

/** Whether a key file's text is a PEM private key (cosign format), rather than an OpenPGP one. */
export function isPemPrivateKey(text: string): boolean {
  return /-----BEGIN (ENCRYPTED |EC )?PRIVATE KEY-----/.test(text);
}

/** A cosign signature (base64 DER) over `payload` with an ECDSA P-256 private key, and the key's fingerprint. */
export function signCosign(
  privatePem: string,
  payload: Uint8Array,
  passphrase?: string,
): { signature: string; fingerprint: string; publicKey: CosignKey } {
  let key: KeyObject;
  try {
    key = createPrivateKey(passphrase ? { key: privatePem, passphrase } : { key: privatePem });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ERR_MISSING_PASSPHRASE")
      throw new Error("the key is encrypted: set PROPELLER_KEY_PASSPHRASE, or run on a terminal to be asked");
    // A wrong passphrase decrypts to noise: mostly a padding error, but now and then (the padding happened to
    // look right) noise that does not decode as a key. Either way, for an encrypted key it is the passphrase.
    if (code === "ERR_OSSL_BAD_DECRYPT" || (passphrase && privatePem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")))
      throw new Error("wrong passphrase for the key");
    throw new Error(`not a private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1")
    throw new Error("only ECDSA P-256 keys can sign in cosign's format (propeller keys create)");
  const pub = createPublicKey(key);
  const fingerprint = sha256Hex(pub.export({ type: "spki", format: "der" })).toUpperCase();
  return {
    signature: sign("sha256", payload, { key, dsaEncoding: "der" }).toString("base64"),
    fingerprint,
    publicKey: { key: pub, fingerprint },
  };
}
