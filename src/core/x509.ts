import { createHash } from "node:crypto";
import { isIP } from "node:net";

// Just enough X.509 for a site's own certificate authority: a CA certificate and the certificates it signs
// (servers and clients), ECDSA P-256 with SHA-256, DER-encoded by hand (RFC 5280) so `propeller certs create`
// needs no other tool. Keys and signatures come from WebCrypto; this file only encodes. `openssl verify` and
// the TLS stacks of Bun and mqtt.js check the result in the tests.

const bytes = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

function length(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const out: number[] = [];
  for (let v = n; v > 0; v >>>= 8) out.unshift(v & 0xff);
  return Uint8Array.of(0x80 | out.length, ...out);
}

const tlv = (tag: number, ...content: Uint8Array[]) => {
  const body = bytes(...content);
  return bytes(Uint8Array.of(tag), length(body.length), body);
};

const seq = (...c: Uint8Array[]) => tlv(0x30, ...c);
const set = (...c: Uint8Array[]) => tlv(0x31, ...c);
const explicit = (n: number, ...c: Uint8Array[]) => tlv(0xa0 | n, ...c);
const octets = (b: Uint8Array) => tlv(0x04, b);
const bitString = (b: Uint8Array, unusedBits = 0) => tlv(0x03, Uint8Array.of(unusedBits), b);
const bool = (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0));
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));

/** A non-negative INTEGER from big-endian bytes: leading zeros dropped, one added when the high bit is set. */
function integer(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0] ?? 0) & 0x80 ? bytes(Uint8Array.of(0), v) : v);
}

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [a! * 40 + b!];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** UTCTime until 2049, GeneralizedTime after, as RFC 5280 asks. */
function time(d: Date): Uint8Array {
  const s = d.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, new TextEncoder().encode(`${s.slice(2)}Z`))
    : tlv(0x18, new TextEncoder().encode(`${s}Z`));
}

const name = (cn: string) => seq(set(seq(oid("2.5.4.3"), utf8(cn))));
const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));
const extension = (id: string, critical: boolean, value: Uint8Array) =>
  seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

/** WebCrypto's ECDSA signature (r ‖ s, 32 bytes each) as the DER SEQUENCE that X.509 carries. */
export function derSignature(raw: Uint8Array): Uint8Array {
  return seq(integer(raw.subarray(0, raw.length / 2)), integer(raw.subarray(raw.length / 2)));
}

export interface CertRequest {
  /** Common name of the subject. */
  subject: string;
  issuer: string;
  /** DER SubjectPublicKeyInfo of the subject's key (WebCrypto `exportKey("spki")`). */
  spki: Uint8Array;
  /** The subject's raw public key (`exportKey("raw")`), for its key identifier. */
  publicKey: Uint8Array;
  /** The issuer's raw public key, for the authority key identifier (the subject's own for a self-signed CA). */
  issuerPublicKey: Uint8Array;
  serial: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
  /** DNS names and IP addresses (subjectAltName), for a server. */
  hosts?: string[];
}

const keyId = (raw: Uint8Array) => new Uint8Array(createHash("sha1").update(raw).digest());

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split(".").map(Number));
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(":").map((g) => Number.parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  return Uint8Array.from(all.flatMap((g) => [g >> 8, g & 0xff]));
}

/** The to-be-signed part of a certificate. */
export function tbsCertificate(r: CertRequest): Uint8Array {
  const exts = [
    extension("2.5.29.19", true, r.ca ? seq(bool(true), integer(Uint8Array.of(0))) : seq()),
    // keyUsage: keyCertSign + cRLSign for the CA; digitalSignature for the others.
    extension("2.5.29.15", true, r.ca ? bitString(Uint8Array.of(0x06), 1) : bitString(Uint8Array.of(0x80), 7)),
    extension("2.5.29.14", false, octets(keyId(r.publicKey))),
    extension("2.5.29.35", false, seq(tlv(0x80, keyId(r.issuerPublicKey)))),
  ];
  if (!r.ca) {
    exts.push(extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2"))));
  }
  if (r.hosts?.length) {
    const names = r.hosts.map((h) => (isIP(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, new TextEncoder().encode(h))));
    exts.push(extension("2.5.29.17", false, seq(...names)));
  }
  return seq(
    explicit(0, integer(Uint8Array.of(2))),
    integer(r.serial),
    ECDSA_SHA256,
    name(r.issuer),
    seq(time(r.notBefore), time(r.notAfter)),
    name(r.subject),
    r.spki,
    explicit(3, seq(...exts)),
  );
}

/** The signed certificate: the to-be-signed part, the algorithm, and the DER signature over it. */
export function certificate(tbs: Uint8Array, signature: Uint8Array): Uint8Array {
  return seq(tbs, ECDSA_SHA256, bitString(derSignature(signature)));
}

export function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}
