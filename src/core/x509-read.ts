import { createHash, X509Certificate } from "node:crypto";

// Reading certificates back: what a PEM file holds (subject, hosts, expiry), the site CA in a chain, and the
// hash that pins it in a join token (sha256 of its SubjectPublicKeyInfo, as kubeadm's discovery hash). Pure:
// text in, facts out; the callers read the files.

export interface CertInfo {
  subject: string;
  issuer: string;
  /** DNS names and IP addresses of the subjectAltName. */
  hosts: string[];
  notAfter: Date;
  ca: boolean;
  pem: string;
}

/** The PEM certificates in a text (a chain), in order. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}

const cn = (dn: string) => /(?:^|\n|,\s*)CN=([^\n,]+)/.exec(dn)?.[1] ?? dn;

/** Every certificate of a PEM text; a block that does not parse is an error naming its place. */
export function readCertificates(text: string): CertInfo[] {
  return pemCertificates(text).map((pem, i) => {
    let c: X509Certificate;
    try {
      c = new X509Certificate(pem);
    } catch (e) {
      throw new Error(`certificate ${i + 1} does not parse: ${e instanceof Error ? e.message : e}`);
    }
    const hosts = (c.subjectAltName ?? "")
      .split(",")
      .map((s) => s.trim().replace(/^(DNS|IP Address):/, ""))
      .filter(Boolean);
    return { subject: cn(c.subject), issuer: cn(c.issuer), hosts, notAfter: c.validToDate, ca: c.ca, pem };
  });
}

/** sha256 of a certificate's SubjectPublicKeyInfo, as `sha256:<hex>`. */
export function spkiHash(pem: string): string {
  const der = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

/**
 * The CA of a served chain: the last certificate when it is a self-signed CA (as `certs create` writes server.pem:
 * the server's certificate, then the CA's); else `extra` (serve's --tls-client-ca) when it issued the chain's
 * last certificate; else none.
 */
export function chainCa(chain: string, extra?: string): string | undefined {
  const certs = pemCertificates(chain).map((p) => new X509Certificate(p));
  const last = certs.at(-1);
  if (!last) return undefined;
  if (last.ca && last.checkIssued(last) && last.verify(last.publicKey)) return last.toString();
  for (const p of extra ? pemCertificates(extra) : []) {
    const ca = new X509Certificate(p);
    if (ca.ca && last.checkIssued(ca) && last.verify(ca.publicKey)) return ca.toString();
  }
  return undefined;
}

/** Whether `pem` (a leaf) was signed by `caPem`. */
export function issuedBy(pem: string, caPem: string): boolean {
  const c = new X509Certificate(pem);
  const ca = new X509Certificate(caPem);
  return c.checkIssued(ca) && c.verify(ca.publicKey);
}

/** Days a certificate ahead of its expiry is warned about (log and metric). */
export const EXPIRY_WARNING_DAYS = 30;

/** What to warn about: certificates that expire within `days` of `now` (or have expired). */
export function expiryWarnings(certs: { label: string; notAfter: Date }[], now: number, days = EXPIRY_WARNING_DAYS) {
  return certs
    .filter((c) => c.notAfter.getTime() - now < days * 86_400_000)
    .map((c) => {
      const left = (c.notAfter.getTime() - now) / 86_400_000;
      return left <= 0
        ? `certificate ${c.label} expired on ${c.notAfter.toISOString()}`
        : `certificate ${c.label} expires on ${c.notAfter.toISOString()} (in ${Math.floor(left)} days): renew it with \`propeller certs renew\``;
    });
}
