import { describe, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import {
  decryptLayer,
  ENC_KEYS_JWE,
  ENC_PUBOPTS,
  encryptLayer,
  MAX_JWES,
  MAX_RECIPIENTS,
  matchesApproved,
  unwrapEncrypted,
  wrapEncrypted,
} from "../../../src/core/ocicrypt.ts";

// ocicrypt's layer format: what goes in, what comes out, and every way it can be refused.

const pair = () =>
  generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const alice = pair();
const bob = pair();
const eve = pair();
const plain = new TextEncoder().encode("\0asm a module that should stay secret");

describe("ocicrypt layers", () => {
  test("every recipient opens it; the annotations are ocicrypt's; the private options are not in the clear", () => {
    const { data, annotations } = encryptLayer(plain, [alice.publicKey, bob.publicKey]);
    expect(Buffer.from(data).includes(Buffer.from("secret"))).toBe(false);
    const pub = JSON.parse(Buffer.from(annotations[ENC_PUBOPTS]!, "base64").toString());
    expect(pub.cipher).toBe("AES_256_CTR_HMAC_SHA256");
    const jwe = JSON.parse(Buffer.from(annotations[ENC_KEYS_JWE]!, "base64").toString());
    expect(jwe.recipients.map((r: { header: { alg: string } }) => r.header.alg)).toEqual(["RSA-OAEP", "RSA-OAEP"]);
    expect(JSON.stringify(jwe)).not.toContain("symkey");
    for (const k of [alice.privateKey, bob.privateKey]) expect(decryptLayer(data, annotations, [k])).toEqual(plain);
    // Keys are tried in turn; a public key among them is passed over.
    expect(decryptLayer(data, annotations, [eve.privateKey, alice.publicKey, bob.privateKey])).toEqual(plain);
  });

  test("refusals: no key, the wrong key, an altered layer, a missing annotation, another cipher", () => {
    const { data, annotations } = encryptLayer(plain, [alice.publicKey]);
    expect(decryptLayer(data, annotations, [])).toContain("has no decryption key");
    expect(decryptLayer(data, annotations, [eve.privateKey])).toContain("no decryption key fits");
    const altered = new Uint8Array(data);
    altered[3]! ^= 1;
    expect(decryptLayer(altered, annotations, [alice.privateKey])).toBe(
      "the layer's HMAC does not match: it was altered",
    );
    expect(decryptLayer(data, { [ENC_PUBOPTS]: annotations[ENC_PUBOPTS]! }, [alice.privateKey])).toContain(
      ENC_KEYS_JWE,
    );
    const other = Buffer.from(JSON.stringify({ cipher: "AES_128_GCM" })).toString("base64");
    expect(decryptLayer(data, { ...annotations, [ENC_PUBOPTS]: other }, [alice.privateKey])).toContain("not supported");
    expect(() => encryptLayer(plain, [])).toThrow("no recipient");
    // Bounded work for a hostile layer: too many recipients or JWEs are refused before any RSA is tried.
    const jwe = JSON.parse(Buffer.from(annotations[ENC_KEYS_JWE]!, "base64").toString());
    const crowd = { ...jwe, recipients: Array.from({ length: MAX_RECIPIENTS + 1 }, () => jwe.recipients[0]) };
    const crowded = { ...annotations, [ENC_KEYS_JWE]: Buffer.from(JSON.stringify(crowd)).toString("base64") };
    expect(decryptLayer(data, crowded, [alice.privateKey])).toBe(
      `the JWE names ${MAX_RECIPIENTS + 1} recipients (at most ${MAX_RECIPIENTS})`,
    );
    const many = {
      ...annotations,
      [ENC_KEYS_JWE]: Array(MAX_JWES + 1)
        .fill(annotations[ENC_KEYS_JWE])
        .join(","),
    };
    expect(decryptLayer(data, many, [alice.privateKey])).toBe(
      `the layer carries ${MAX_JWES + 1} JWEs (at most ${MAX_JWES})`,
    );
  });

  test("the envelope the proxy sends carries the annotations; plain modules are not mistaken for one", () => {
    const meta = { mediaType: "application/wasm+encrypted", annotations: { a: "b" } };
    const env = wrapEncrypted(new Uint8Array([1, 2, 3]), meta);
    const back = unwrapEncrypted(env)!;
    expect(back.meta).toEqual(meta);
    expect([...back.data]).toEqual([1, 2, 3]);
    expect(unwrapEncrypted(plain)).toBeUndefined();
    expect(unwrapEncrypted(env.subarray(0, 14))).toBeUndefined(); // truncated JSON
  });
});

describe("the digest a trust policy approved", () => {
  const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
  test("a plain module matches its own digest; an envelope its ciphertext's, before anything is decrypted", () => {
    expect(matchesApproved(plain, sha(plain))).toBe(true);
    const { data, annotations } = encryptLayer(plain, [alice.publicKey]);
    const envelope = wrapEncrypted(data, { mediaType: "application/wasm+encrypted", annotations });
    expect(matchesApproved(envelope, sha(data))).toBe(true);
    // Another ciphertext of the same module (another key, another nonce) is not the approved one.
    const other = encryptLayer(plain, [alice.publicKey]).data;
    expect(
      matchesApproved(wrapEncrypted(other, { mediaType: "application/wasm+encrypted", annotations }), sha(data)),
    ).toBe(false);
    // Neither is the plain module when its ciphertext was approved, nor an envelope when the plain module was.
    expect(matchesApproved(plain, sha(data))).toBe(false);
    expect(matchesApproved(envelope, sha(plain))).toBe(false);
  });
});
