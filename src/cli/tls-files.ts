import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { UsageError } from "./args.ts";

// serve's TLS files checked before anything is written or listened on: a swapped pair, another certificate's key or
// the CA's certificate otherwise surfaces as an OpenSSL error naming no file, after the data dir was made.

const PEM_CERT = /-----BEGIN CERTIFICATE-----/;
const PEM_KEY = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

function certificate(flag: string, file: string, pem: string): X509Certificate {
  if (!PEM_CERT.test(pem)) {
    const what = PEM_KEY.test(pem)
      ? "a private key, not a certificate (swapped with --tls-key?)"
      : "no PEM certificate";
    throw new UsageError(`${flag} ${file} holds ${what}`);
  }
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new UsageError(`${flag} ${file}: its certificate does not parse: ${e instanceof Error ? e.message : e}`);
  }
}

function privateKey(flag: string, file: string, pem: string): KeyObject {
  if (!PEM_KEY.test(pem)) {
    const what = PEM_CERT.test(pem)
      ? "a certificate, not a private key (swapped with --tls-cert?)"
      : "no PEM private key";
    throw new UsageError(`${flag} ${file} holds ${what}`);
  }
  if (/ENCRYPTED/.test(pem)) throw new UsageError(`${flag} ${file} is encrypted: serve needs the key unencrypted`);
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new UsageError(`${flag} ${file}: its private key does not parse: ${e instanceof Error ? e.message : e}`);
  }
}

/** Refuses TLS files that cannot work together, naming the flag, the file and what is wrong. */
export function checkTlsFiles(
  cert: { flag: string; file: string; pem: string },
  key: { flag: string; file: string; pem: string },
  clientCa?: { flag: string; file: string; pem: string },
): void {
  const x = certificate(cert.flag, cert.file, cert.pem);
  const k = privateKey(key.flag, key.file, key.pem);
  if (!x.checkPrivateKey(k)) {
    const ca = x.ca ? `; ${cert.file} is a CA certificate: ${cert.flag} takes the server's (e.g. server.pem)` : "";
    throw new UsageError(
      `${key.flag} ${key.file} is not the private key of the certificate in ${cert.flag} ${cert.file}${ca}`,
    );
  }
  if (clientCa) certificate(clientCa.flag, clientCa.file, clientCa.pem);
}
