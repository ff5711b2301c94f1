import { expect, test } from "bun:test";
import * as openpgp from "openpgp";
import { simpleSigningPayload, verifySimpleSigning } from "../../../src/core/simple-signing.ts";

// A signature made while its key was valid, by a key that has expired since: OpenPGP holds it good, containers/image
// (gpgme) refuses it; so do we, so that a key retired by letting it expire signs nothing more that runs.

const DIGEST = `sha256:${"a".repeat(64)}`;

async function signedAt(expiresInS: number | undefined, ageS: number) {
  const created = new Date(Date.now() - ageS * 1000);
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: "ecc",
    curve: "ed25519Legacy",
    userIDs: [{ name: "signer", email: "signer@example.org" }],
    date: created,
    ...(expiresInS ? { keyExpirationTime: expiresInS } : {}),
    format: "object",
  });
  const message = await openpgp.createMessage({ binary: simpleSigningPayload("reg.local/app", DIGEST) });
  const sig = await openpgp.sign({
    message,
    signingKeys: privateKey,
    format: "binary",
    date: new Date(created.getTime() + 1000),
  });
  return { sig: sig as Uint8Array, key: publicKey };
}

test("a signature by a key that expired since is refused, saying so; one by a key still valid is taken", async () => {
  const old = await signedAt(5, 60);
  const r = await verifySimpleSigning(old.sig, [old.key]);
  expect("error" in r && r.error).toContain("which expired at");
  const fresh = await signedAt(3600, 60);
  const ok = await verifySimpleSigning(fresh.sig, [fresh.key]);
  expect("error" in ok ? ok.error : ok.digest).toBe(DIGEST);
  const forever = await signedAt(undefined, 60);
  const ok2 = await verifySimpleSigning(forever.sig, [forever.key]);
  expect("error" in ok2 ? ok2.error : ok2.digest).toBe(DIGEST);
});
