import * as openpgp from "openpgp";
import { z } from "zod";
import type { VerifiedSignature } from "./trust-policy.ts";

// OpenPGP "simple signing" (containers-signature(5)), the format skopeo writes with `copy --sign-by` and reads
// for a `signedBy` requirement: an OpenPGP signed message whose literal data is a small JSON payload naming the
// manifest digest and the docker reference. Pure computation (openpgp.js); reading keys and signatures is the
// caller's.

const SIGNATURE_TYPE = "atomic container signature";

/** A signed claim's payload of `type`: the manifest digest and the name signed (cosign's differs by its type). */
export const signedClaim = (type: string) =>
  z.looseObject({
    critical: z.looseObject({
      type: z.literal(type),
      image: z.looseObject({ "docker-manifest-digest": z.string().regex(/^sha256:[a-f0-9]{64}$/) }),
      identity: z.looseObject({ "docker-reference": z.string().min(1).max(512) }),
    }),
  });

export const SimpleSigningPayload = signedClaim(SIGNATURE_TYPE).extend({ optional: z.looseObject({}).optional() });

/** A claim's bytes, as signed: `digest` under the name `reference`, with the `optional` section given. */
export function claimBytes(type: string, reference: string, digest: string, optional: object | null): Uint8Array {
  const body = {
    critical: {
      identity: { "docker-reference": reference },
      image: { "docker-manifest-digest": digest },
      type,
    },
    optional,
  };
  return new TextEncoder().encode(JSON.stringify(body));
}

/** The payload a signature for `digest` under the name `reference` carries. */
export function simpleSigningPayload(reference: string, digest: string, creator = "propeller"): Uint8Array {
  return claimBytes(SIGNATURE_TYPE, reference, digest, { creator, timestamp: Math.floor(Date.now() / 1000) });
}

/** Public keys from a key file's bytes (armored or binary, one or many: `gpg --export [--armor]`). */
export async function readPublicKeys(bytes: Uint8Array): Promise<openpgp.Key[]> {
  const text = new TextDecoder().decode(bytes.subarray(0, 64));
  return text.includes("-----BEGIN PGP")
    ? await openpgp.readKeys({ armoredKeys: new TextDecoder().decode(bytes) })
    : await openpgp.readKeys({ binaryKeys: bytes });
}

/** The upper-case fingerprint of a key's primary key (as gpg prints and skopeo's `--sign-by` takes). */
export const fingerprintOf = (k: openpgp.Key): string => k.getFingerprint().toUpperCase();

/** The bytes of a signature (a signed OpenPGP message) verified by one of `keys`, or why not. */
export async function verifySimpleSigning(
  sig: Uint8Array,
  keys: openpgp.Key[],
): Promise<VerifiedSignature | { error: string }> {
  let message: openpgp.Message<Uint8Array>;
  try {
    message = await openpgp.readMessage({ binaryMessage: sig });
  } catch (e) {
    return { error: `not an OpenPGP message: ${(e as Error).message}` };
  }
  let data: Uint8Array;
  let signer: openpgp.Key | undefined;
  let expired: Date | undefined;
  try {
    const r = await openpgp.verify({ message, verificationKeys: keys, format: "binary", expectSigned: true });
    data = r.data as Uint8Array;
    for (const s of r.signatures) {
      await s.verified;
      signer = keys.find((k) => k.getKeyIDs().some((id) => id.equals(s.keyID)));
      if (signer) {
        expired = await expiredAt(signer, s.keyID);
        break;
      }
    }
  } catch (e) {
    return { error: `signature not verified by a trusted key: ${(e as Error).message}` };
  }
  if (!signer) return { error: "signature not verified by a trusted key" };
  // OpenPGP holds a signature good when its key was valid as it was made; containers/image (gpgme) refuses one
  // whose key has expired since, so a key retired by letting it expire signs nothing more that runs.
  if (expired) return { error: `signature by key ${fingerprintOf(signer)}, which expired at ${expired.toISOString()}` };
  let payload: z.infer<typeof SimpleSigningPayload>;
  try {
    const p = SimpleSigningPayload.safeParse(JSON.parse(new TextDecoder().decode(data)));
    if (!p.success) return { error: "signature payload is not a simple-signing payload" };
    payload = p.data;
  } catch {
    return { error: "signature payload is not JSON" };
  }
  return {
    fingerprint: fingerprintOf(signer),
    digest: payload.critical.image["docker-manifest-digest"],
    identity: payload.critical.identity["docker-reference"],
  };
}

/** When the key, or its subkey `keyID` that signed, expired, if it has by now. */
async function expiredAt(key: openpgp.Key, keyID: openpgp.KeyID): Promise<Date | undefined> {
  const sub = key.getSubkeys().find((k) => k.getKeyID().equals(keyID));
  for (const t of [await key.getExpirationTime(), sub ? await sub.getExpirationTime() : null]) {
    if (t instanceof Date && t.getTime() <= Date.now()) return t;
  }
  return undefined;
}

/** A simple-signing signature (binary signed message) over the payload for `digest` named `reference`. */
export async function signSimpleSigning(
  armoredPrivateKey: string,
  reference: string,
  digest: string,
): Promise<{ signature: Uint8Array; fingerprint: string }> {
  const key = await openpgp.readPrivateKey({ armoredKey: armoredPrivateKey });
  if (!key.isDecrypted()) throw new Error("the signing key is protected by a passphrase: export it without one");
  const message = await openpgp.createMessage({ binary: simpleSigningPayload(reference, digest) });
  const signature = await openpgp.sign({ message, signingKeys: key, format: "binary" });
  return { signature: signature as Uint8Array, fingerprint: fingerprintOf(key) };
}
