import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

// Encrypted Wasm layers in ocicrypt's format (containers/ocicrypt, as skopeo and containerd's imgcrypt write
// them), with the JWE key wrapper: the layer is AES-256-CTR with an HMAC-SHA256 over the ciphertext; the
// symmetric key and nonce ("private options") are a JWE (A256GCM content, RSA-OAEP per recipient) in the layer
// annotation `org.opencontainers.image.enc.keys.jwe`; the cipher name and HMAC ("public options") are in
// `org.opencontainers.image.enc.pubopts`. Computation only (no I/O): the CLI encrypts, the proplet decrypts, and
// the proxy passes ciphertext along without ever holding a key.

export const ENC_KEYS_JWE = "org.opencontainers.image.enc.keys.jwe";
export const ENC_PUBOPTS = "org.opencontainers.image.enc.pubopts";
export const ENCRYPTED_SUFFIX = "+encrypted";
const CIPHER = "AES_256_CTR_HMAC_SHA256";
/**
 * Every recipient may cost an RSA decryption per key: a layer naming thousands would stall the proplet, so more
 * than these are refused before any is tried.
 */
export const MAX_JWES = 16;
export const MAX_RECIPIENTS = 64;

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");
const fromB64url = (s: string) => Buffer.from(s, "base64url");

/** Encrypts a layer for RSA public keys (PEM); returns the ciphertext and the annotations that go with it. */
export function encryptLayer(plain: Uint8Array, recipientsPem: string[]) {
  if (recipientsPem.length === 0) throw new Error("no recipient: give at least one public key");
  const symkey = randomBytes(32);
  const nonce = randomBytes(16);
  const ct = createCipheriv("aes-256-ctr", symkey, nonce);
  const data = Buffer.concat([ct.update(plain), ct.final()]);
  const hmac = createHmac("sha256", symkey).update(data).digest();
  // Go's encoding/json writes []byte as standard base64, and ocicrypt's options are Go structs.
  const priv = {
    symkey: symkey.toString("base64"),
    digest: `sha256:${createHash("sha256").update(plain).digest("hex")}`,
    cipheroptions: { nonce: nonce.toString("base64") },
  };
  const pub = { cipher: CIPHER, hmac: hmac.toString("base64"), cipheroptions: {} };
  const jwe = jweEncrypt(Buffer.from(JSON.stringify(priv)), recipientsPem);
  return {
    data: new Uint8Array(data),
    annotations: {
      [ENC_KEYS_JWE]: Buffer.from(JSON.stringify(jwe)).toString("base64"),
      [ENC_PUBOPTS]: Buffer.from(JSON.stringify(pub)).toString("base64"),
    },
  };
}

function jweEncrypt(payload: Buffer, recipientsPem: string[]) {
  const cek = randomBytes(32);
  const iv = randomBytes(12);
  const protectedHeader = b64url(Buffer.from(JSON.stringify({ enc: "A256GCM" })));
  const gcm = createCipheriv("aes-256-gcm", cek, iv);
  gcm.setAAD(Buffer.from(protectedHeader, "ascii"));
  const ciphertext = Buffer.concat([gcm.update(payload), gcm.final()]);
  const recipients = recipientsPem.map((pem) => {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== "rsa")
      throw new Error(`only RSA recipients are supported (got ${key.asymmetricKeyType})`);
    const wrapped = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cek);
    return { header: { alg: "RSA-OAEP" }, encrypted_key: b64url(wrapped) };
  });
  return {
    protected: protectedHeader,
    recipients,
    iv: b64url(iv),
    ciphertext: b64url(ciphertext),
    tag: b64url(gcm.getAuthTag()),
  };
}

interface Jwe {
  protected?: string;
  header?: { alg?: string };
  encrypted_key?: string;
  recipients?: { header?: { alg?: string }; encrypted_key?: string }[];
  iv: string;
  ciphertext: string;
  tag: string;
}

/** The private options a JWE holds, opened with the first private key that fits; a reason when none does. */
function jweDecrypt(jwe: Jwe, keysPem: string[]): Buffer | string {
  const protectedHeader = jwe.protected ?? "";
  const shared = protectedHeader
    ? (JSON.parse(fromB64url(protectedHeader).toString()) as { enc?: string; alg?: string })
    : {};
  if (shared.enc && shared.enc !== "A256GCM")
    return `JWE content encryption ${shared.enc} is not supported (A256GCM is)`;
  const recipients = jwe.recipients ?? [{ header: jwe.header, encrypted_key: jwe.encrypted_key }];
  if (recipients.length > MAX_RECIPIENTS)
    return `the JWE names ${recipients.length} recipients (at most ${MAX_RECIPIENTS})`;
  for (const pem of keysPem) {
    let key: ReturnType<typeof createPrivateKey>;
    try {
      key = createPrivateKey(pem);
    } catch {
      continue; // not a private key (a public one beside it, say)
    }
    for (const r of recipients) {
      const alg = r.header?.alg ?? shared.alg;
      if ((alg !== "RSA-OAEP" && alg !== "RSA-OAEP-256") || !r.encrypted_key) continue;
      try {
        const cek = privateDecrypt(
          { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: alg === "RSA-OAEP" ? "sha1" : "sha256" },
          fromB64url(r.encrypted_key),
        );
        const gcm = createDecipheriv("aes-256-gcm", cek, fromB64url(jwe.iv));
        gcm.setAAD(Buffer.from(protectedHeader, "ascii"));
        gcm.setAuthTag(fromB64url(jwe.tag));
        return Buffer.concat([gcm.update(fromB64url(jwe.ciphertext)), gcm.final()]);
      } catch {
        // not this key's recipient
      }
    }
  }
  return "no decryption key fits this module (none of the keys is a recipient of its JWE)";
}

/** Decrypts a layer with the first private key (PEM) among `keysPem` that is one of its recipients. */
export function decryptLayer(
  data: Uint8Array,
  annotations: Record<string, string>,
  keysPem: string[],
): Uint8Array | string {
  const jwes = annotations[ENC_KEYS_JWE];
  const pubText = annotations[ENC_PUBOPTS];
  if (!jwes) return `the layer has no ${ENC_KEYS_JWE} annotation (only ocicrypt's JWE key wrapper is supported)`;
  if (!pubText) return `the layer has no ${ENC_PUBOPTS} annotation`;
  if (keysPem.length === 0)
    return "the module is encrypted and this proplet has no decryption key (PROPLET_DECRYPTION_KEYS)";
  let pub: { cipher?: string; hmac?: string };
  try {
    pub = JSON.parse(Buffer.from(pubText, "base64").toString());
  } catch {
    return `${ENC_PUBOPTS} is not base64 JSON`;
  }
  if (pub.cipher !== CIPHER) return `layer cipher ${pub.cipher} is not supported (${CIPHER} is)`;
  let priv: Buffer | string = "no JWE in the annotation";
  const all = jwes.split(",");
  if (all.length > MAX_JWES) return `the layer carries ${all.length} JWEs (at most ${MAX_JWES})`;
  for (const one of all) {
    let jwe: Jwe;
    try {
      jwe = JSON.parse(Buffer.from(one, "base64").toString());
    } catch {
      return `${ENC_KEYS_JWE} is not base64 JSON`;
    }
    priv = jweDecrypt(jwe, keysPem);
    if (typeof priv !== "string") break;
  }
  if (typeof priv === "string") return priv;
  const opts = JSON.parse(priv.toString()) as { symkey?: string; digest?: string; cipheroptions?: { nonce?: string } };
  const symkey = Buffer.from(opts.symkey ?? "", "base64");
  const nonce = Buffer.from(opts.cipheroptions?.nonce ?? "", "base64");
  if (symkey.length !== 32 || nonce.length !== 16) return "the layer's key or nonce has the wrong length";
  const mac = createHmac("sha256", symkey).update(data).digest();
  const expected = Buffer.from(pub.hmac ?? "", "base64");
  if (expected.length !== mac.length || !timingSafeEqual(mac, expected))
    return "the layer's HMAC does not match: it was altered";
  const ctr = createDecipheriv("aes-256-ctr", symkey, nonce);
  const plain = Buffer.concat([ctr.update(data), ctr.final()]);
  if (opts.digest && opts.digest !== `sha256:${createHash("sha256").update(plain).digest("hex")}`) {
    return "the decrypted layer does not match its digest";
  }
  return new Uint8Array(plain);
}

// The proxy hands an encrypted layer to proplets as it is, with what decrypting it needs: a small envelope
// (magic, JSON length, JSON {mediaType, annotations}, ciphertext), so the chunk protocol carries it unchanged.
const MAGIC = Buffer.from("PROPENC1");

export function wrapEncrypted(
  data: Uint8Array,
  meta: { mediaType: string; annotations: Record<string, string> },
): Uint8Array {
  const json = Buffer.from(JSON.stringify(meta));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return new Uint8Array(Buffer.concat([MAGIC, len, json, data]));
}

/** An envelope's parts; undefined when the bytes are not one (a plain module). */
export function unwrapEncrypted(
  bytes: Uint8Array,
): { meta: { mediaType: string; annotations: Record<string, string> }; data: Uint8Array } | undefined {
  if (bytes.length < 12 || !Buffer.from(bytes.subarray(0, 8)).equals(MAGIC)) return undefined;
  const len = Buffer.from(bytes.subarray(8, 12)).readUInt32BE();
  if (len > 1 << 20 || 12 + len > bytes.length) return undefined;
  try {
    const meta = JSON.parse(Buffer.from(bytes.subarray(12, 12 + len)).toString());
    if (typeof meta?.annotations !== "object" || meta.annotations === null) return undefined;
    return { meta, data: bytes.subarray(12 + len) };
  } catch {
    return undefined;
  }
}

/**
 * Whether `bytes` are what a trust policy approved as `digest` (docs/ARCHITECTURE.md, "Trusted code"): the module
 * itself, or an envelope whose ciphertext is the approved layer (the signed manifest names the encrypted layer's
 * digest), so an encrypted module is held to it before it is decrypted.
 */
export function matchesApproved(bytes: Uint8Array, digest: string): boolean {
  const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  if (sha(bytes) === digest) return true;
  const envelope = unwrapEncrypted(bytes);
  return envelope !== undefined && sha(envelope.data) === digest;
}
