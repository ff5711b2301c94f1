import { chainCa, expiryWarnings, readCertificates } from "../core/x509-read.ts";
import { log } from "../log.ts";

// serve's TLS certificates and their ends: a warning in the log at start and once a day while one expires within
// 30 days (or has expired), and `propeller_certificate_expiry_seconds{cert}` for /metrics (api/prometheus.ts).

export interface CertExpiry {
  /** `server` (the served certificate), `ca` (the chain's CA), `client_ca` (--tls-client-ca). */
  cert: string;
  notAfter: Date;
}

const DAY_MS = 86_400_000;

/** The certificates of serve's TLS settings, by label. */
export function servedCertificates(tls: { cert: string; clientCa?: string }): CertExpiry[] {
  const out: CertExpiry[] = [];
  const chain = readCertificates(tls.cert);
  if (chain[0]) out.push({ cert: "server", notAfter: chain[0].notAfter });
  const ca = chain.length > 1 ? chainCa(tls.cert) : undefined;
  if (ca) out.push({ cert: "ca", notAfter: readCertificates(ca)[0]!.notAfter });
  const client = tls.clientCa ? readCertificates(tls.clientCa)[0] : undefined;
  if (client) out.push({ cert: "client_ca", notAfter: client.notAfter });
  return out;
}

/** Warns now and daily; `certs()` is what /metrics reports. */
export function watchCertificates(tls: { cert: string; clientCa?: string }) {
  let certs: CertExpiry[] = [];
  const read = (t: { cert: string; clientCa?: string }) => {
    try {
      certs = servedCertificates(t);
    } catch (e) {
      // TLS itself works with what Bun accepts: not knowing an expiry is no reason to stop.
      log.warn(`cannot read the expiry of serve's certificates: ${e instanceof Error ? e.message : e}`);
    }
  };
  read(tls);
  const warn = () => {
    for (const w of expiryWarnings(
      certs.map((c) => ({ label: c.cert, notAfter: c.notAfter })),
      Date.now(),
    ))
      log.warn(w);
  };
  warn();
  const timer = setInterval(warn, DAY_MS);
  timer.unref?.();
  // reload: the certificates a SIGHUP put in place (site.ts reloadTls), reported and warned about from now on.
  const reload = (t: { cert: string; clientCa?: string }) => {
    read(t);
    warn();
  };
  return { certs: () => certs, reload, stop: () => clearInterval(timer) };
}
