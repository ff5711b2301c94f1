import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mulberry32 } from "../../../scripts/chaos/prng.ts";
import { ociDigest, sha256Hex } from "../../../src/core/digest.ts";

// sha256Hex takes Bun's one-shot hash instead of a hasher object (cheaper per authenticated request): it must give
// the digest a hasher object gives, and node:crypto's, for every string (lone surrogates included) and byte view.

const rnd = mulberry32(7);
const int = (n: number) => Math.floor(rnd() * n);
const UNITS = [0x00, 0x41, 0x7f, 0x80, 0xe9, 0x7ff, 0x800, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xfeff, 0xffff];
const randomString = () =>
  String.fromCharCode(
    ...Array.from({ length: int(80) }, () => (rnd() < 0.5 ? UNITS[int(UNITS.length)]! : int(0x10000))),
  );
const randomBytes = () => {
  const all = new Uint8Array(int(300));
  for (let i = 0; i < all.length; i++) all[i] = int(256);
  const from = int(all.length + 1);
  return all.subarray(from, from + int(all.length - from + 1)); // a view at an offset of a larger buffer
};

test("sha256Hex gives a hasher object's digest (and node:crypto's) for 5,000 random strings and byte views", () => {
  for (let i = 0; i < 5_000; i++) {
    const input = rnd() < 0.5 ? randomString() : randomBytes();
    const object = new Bun.CryptoHasher("sha256").update(input).digest("hex");
    expect({ input, got: sha256Hex(input) }).toEqual({ input, got: object });
    expect(createHash("sha256").update(input).digest("hex")).toBe(object);
  }
});

test("known digests: the empty input, a token, the OCI form", () => {
  expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  expect(sha256Hex(new Uint8Array(0))).toBe(sha256Hex(""));
  expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  expect(ociDigest(Buffer.from("abc"))).toBe(`sha256:${sha256Hex("abc")}`);
});
