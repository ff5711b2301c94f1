import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CosignKey,
  cosignLayers,
  cosignPayload,
  cosignSignatureTag,
  generateCosignKeyPair,
  MAX_COSIGN_LAYERS,
  readCosignPublicKey,
  signCosign,
  verifyCosign,
  verifyCosignBlob,
} from "../../../src/core/cosign.ts";
import { ociDigest } from "../../../src/core/digest.ts";
import { parseReference, type Reference } from "../../../src/core/oci.ts";
import { decide, parseTrustPolicy, type TrustPolicy } from "../../../src/core/trust-policy.ts";

// Vectors signed by /usr/bin/cosign (test/fixtures/cosign/README.md says where they come from).
const dir = join(import.meta.dir, "../../fixtures/cosign");
const key = (f: string) => readCosignPublicKey(readFileSync(join(dir, f), "utf8")) as CosignKey;
/** containers/image keeps a signature as `\0sigstore-json\n` + {payload (base64), annotations}. */
function vector(f: string): { payload: Uint8Array; signature: string } {
  const text = readFileSync(join(dir, f), "utf8");
  const j = JSON.parse(text.slice(text.indexOf("{")));
  return {
    payload: new Uint8Array(Buffer.from(j.payload, "base64")),
    signature: j.annotations["dev.cosignproject.cosign/signature"],
  };
}
const MANIFEST_DIGEST = ociDigest(readFileSync(join(dir, "valid.manifest")));

describe("cosign signatures produced by cosign", () => {
  test("the fixture's manifest is the one signed", () => {
    expect(MANIFEST_DIGEST).toBe("sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00");
  });

  test("verifies with cosign.pub, naming the digest and the reference", () => {
    const v = vector("valid.signature");
    const r = verifyCosign(v.payload, v.signature, [key("cosign.pub")]);
    expect(r).toEqual({
      fingerprint: key("cosign.pub").fingerprint,
      digest: MANIFEST_DIGEST,
      identity: "192.168.64.2:5000/cosign-signed-single-sample",
    });
  });

  test("a tampered payload is refused", () => {
    const v = vector("valid.signature");
    const text = new TextDecoder().decode(v.payload).replace("single-sample", "single-sampl3");
    expect(verifyCosign(new TextEncoder().encode(text), v.signature, [key("cosign.pub")])).toEqual({
      error: "signature not verified by a trusted key",
    });
  });

  test("another key is refused, and a signature by a key not trusted", () => {
    const v = vector("valid.signature");
    expect("error" in verifyCosign(v.payload, v.signature, [key("cosign2.pub")])).toBe(true);
    const u = vector("unknown-key.signature");
    expect("error" in verifyCosign(u.payload, u.signature, [key("cosign.pub")])).toBe(true);
  });

  test("a wrong digest: the policy refuses a signature for another manifest", () => {
    const v = vector("valid.signature");
    const k = key("cosign.pub");
    const sig = verifyCosign(v.payload, v.signature, [k]);
    if ("error" in sig) throw new Error(sig.error);
    const p = parseTrustPolicy(
      JSON.stringify({
        default: [{ type: "reject" }],
        transports: {
          docker: {
            "192.168.64.2:5000": [
              { type: "sigstoreSigned", keyData: "eA==", signedIdentity: { type: "matchRepository" } },
            ],
          },
        },
      }),
    ) as TrustPolicy;
    const ref = parseReference("192.168.64.2:5000/cosign-signed-single-sample:latest") as Reference;
    const keysOf = () => [k.fingerprint];
    expect(decide(p, ref, MANIFEST_DIGEST, keysOf, [sig]).allowed).toBe(true);
    const other = `sha256:${"b".repeat(64)}`;
    const d = decide(p, ref, other, keysOf, [sig]);
    expect(d.allowed).toBe(false);
    expect(d.rule).toBe("sigstoreSigned");
    expect(d.reason).toContain(`is for ${MANIFEST_DIGEST}, not ${other}`);
    // cosign names the repository without its tag: the default identity rule (exact tag) refuses it.
    const strict = parseTrustPolicy(
      JSON.stringify({ default: [{ type: "sigstoreSigned", keyData: "eA==" }] }),
    ) as TrustPolicy;
    expect(decide(strict, ref, MANIFEST_DIGEST, keysOf, [sig]).reason).toContain(
      "matchRepoDigestOrExact does not accept",
    );
  });
});

describe("keys and signing", () => {
  test("a generated pair signs what the verifier accepts; an encrypted key needs its passphrase", () => {
    const plain = generateCosignKeyPair();
    expect(plain.privatePem).toStartWith("-----BEGIN PRIVATE KEY-----");
    const pub = readCosignPublicKey(plain.publicPem) as CosignKey;
    const payload = cosignPayload("127.0.0.1:5000/app:v1", `sha256:${"c".repeat(64)}`);
    const s = signCosign(plain.privatePem, payload);
    expect(s.fingerprint).toBe(pub.fingerprint);
    expect(verifyCosign(payload, s.signature, [pub])).toMatchObject({ identity: "127.0.0.1:5000/app:v1" });

    const enc = generateCosignKeyPair("correct horse");
    expect(enc.privatePem).toStartWith("-----BEGIN ENCRYPTED PRIVATE KEY-----");
    expect(() => signCosign(enc.privatePem, payload)).toThrow("PROPELLER_KEY_PASSPHRASE");
    expect(() => signCosign(enc.privatePem, payload, "wrong")).toThrow("wrong passphrase");
    // About 1 wrong passphrase in 250 decrypts to noise with a padding that looks right; it said "not a private
    // key" (seen once in CI), which sends a person looking for the wrong mistake.
    for (let i = 0; i < 1500; i++)
      expect(() => signCosign(enc.privatePem, payload, `wrong${i}`)).toThrow("wrong passphrase");
    const e = signCosign(enc.privatePem, payload, "correct horse");
    expect("error" in verifyCosign(payload, e.signature, [readCosignPublicKey(enc.publicPem) as CosignKey])).toBe(
      false,
    );
  });

  test("a sign-blob signature over a module names its digest and no image; other bytes or keys are refused", () => {
    const pair = generateCosignKeyPair();
    const pub = readCosignPublicKey(pair.publicPem) as CosignKey;
    const module = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
    const sig = new TextEncoder().encode(`${signCosign(pair.privatePem, module).signature}\n`);
    expect(verifyCosignBlob(module, sig, "sha256:x", [pub])).toEqual({
      fingerprint: pub.fingerprint,
      digest: "sha256:x",
      identity: "",
    });
    expect(verifyCosignBlob(new Uint8Array([0, 97, 115, 109, 2, 0, 0, 0]), sig, "sha256:x", [pub])).toBeUndefined();
    expect(verifyCosignBlob(module, sig, "sha256:x", [key("cosign.pub")])).toBeUndefined();
    expect(verifyCosignBlob(module, new Uint8Array(5000), "sha256:x", [pub])).toBeUndefined();
  });

  test("the raw DER signature openssl dgst -sha256 -sign writes is taken as well as cosign's base64", () => {
    const pair = generateCosignKeyPair();
    const pub = readCosignPublicKey(pair.publicPem) as CosignKey;
    const module = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
    const der = new Uint8Array(Buffer.from(signCosign(pair.privatePem, module).signature, "base64"));
    expect(der[0]).toBe(0x30);
    expect(verifyCosignBlob(module, der, "sha256:x", [pub])?.fingerprint).toBe(pub.fingerprint);
    expect(verifyCosignBlob(new Uint8Array([0, 97, 115, 109, 2, 0, 0, 0]), der, "sha256:x", [pub])).toBeUndefined();
  });

  test("public keys: only ECDSA P-256 PEM", () => {
    expect(readCosignPublicKey("nope")).toContain("not a PEM public key");
    const { publicKey } = require("node:crypto").generateKeyPairSync("ed25519", {
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    expect(readCosignPublicKey(publicKey)).toContain("only ECDSA P-256");
  });

  test("tag and layers: bounded, only signed simple-signing payloads", () => {
    expect(cosignSignatureTag(`sha256:${"d".repeat(64)}`)).toBe(`sha256-${"d".repeat(64)}.sig`);
    const layer = (i: number, extra = {}) => ({
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      digest: `sha256:${i.toString(16).padStart(64, "0")}`,
      size: 200,
      annotations: { "dev.cosignproject.cosign/signature": "MEUC" },
      ...extra,
    });
    const many = Array.from({ length: 100 }, (_, i) => layer(i));
    expect(cosignLayers({ layers: many })).toHaveLength(MAX_COSIGN_LAYERS);
    expect(
      cosignLayers({
        layers: [layer(1, { size: 1 << 30 }), layer(2, { annotations: {} }), layer(3, { mediaType: "x" })],
      }),
    ).toEqual([]);
  });

  test("a garbage or oversized signature is refused, not thrown", () => {
    const v = vector("valid.signature");
    expect(verifyCosign(v.payload, "!!!", [key("cosign.pub")])).toHaveProperty("error");
    expect(verifyCosign(v.payload, "A".repeat(10_000), [key("cosign.pub")])).toHaveProperty("error");
    expect(verifyCosign(v.payload, "bm9wZQo=", [key("cosign.pub")])).toHaveProperty("error");
  });
});
