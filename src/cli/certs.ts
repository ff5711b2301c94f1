import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { certificate, pem, tbsCertificate } from "../core/x509.ts";
import { action, int, UsageError } from "./args.ts";

// `propeller certs`: a site's own certificate authority, so TLS needs no other tool. `create` makes the CA and a
// server certificate for serve (its host names and addresses); `client NAME` signs a client certificate with
// that CA, for serve's --tls-client-ca. Keys are ECDSA P-256, written 0600.

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

interface KeyPair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

const newKeys = () => crypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as Promise<KeyPair>;
const raw = async (k: CryptoKey) => new Uint8Array(await crypto.subtle.exportKey("raw", k));

/** The public key of a private key, from its JWK coordinates (a CA key read back from disk). */
async function publicOf(privateKey: CryptoKey): Promise<Uint8Array> {
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  return Uint8Array.of(4, ...Buffer.from(jwk.x!, "base64url"), ...Buffer.from(jwk.y!, "base64url"));
}

async function issue(opts: {
  subject: string;
  keys: KeyPair;
  issuer: { name: string; key: CryptoKey; publicKey: Uint8Array };
  ca: boolean;
  hosts?: string[];
  days: number;
}): Promise<string> {
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0]! &= 0x7f;
  const publicKey = await raw(opts.keys.publicKey);
  const tbs = tbsCertificate({
    subject: opts.subject,
    issuer: opts.issuer.name,
    spki: new Uint8Array(await crypto.subtle.exportKey("spki", opts.keys.publicKey)),
    publicKey,
    issuerPublicKey: opts.issuer.publicKey,
    serial,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + opts.days * 86_400_000),
    ca: opts.ca,
    hosts: opts.hosts,
  });
  const signature = new Uint8Array(await crypto.subtle.sign(SIGN, opts.issuer.key, new Uint8Array(tbs)));
  return pem("CERTIFICATE", certificate(tbs, signature));
}

async function privatePem(k: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", new Uint8Array(await crypto.subtle.exportKey("pkcs8", k)));
}

function write(dir: string, file: string, text: string, secret = false): string {
  const path = join(dir, file);
  writeFileSync(path, text, { mode: secret ? 0o600 : 0o644 });
  return path;
}

/** Every `--host` given (it may repeat, which citty does not keep), and comma-separated lists. */
function hostsFrom(rawArgs: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const m = /^--host(?:=(.*))?$/.exec(rawArgs[i]!);
    if (m) out.push(...(m[1] ?? rawArgs[++i] ?? "").split(","));
  }
  return out.map((h) => h.trim()).filter(Boolean);
}

const dirArg = {
  dir: { type: "string", description: "where the CA and certificates live", default: "certs" },
  days: { type: "string", description: "days the certificate is valid", default: "825" },
} as const;

export const certsCommand = defineCommand({
  meta: { name: "certs", description: "A site certificate authority and certificates for TLS" },
  subCommands: {
    create: defineCommand({
      meta: { description: "Create a site CA (ca.pem, ca.key) and a server certificate (server.pem, server.key)" },
      args: {
        host: { type: "string", description: "a DNS name or IP address of serve; repeat, or separate with commas" },
        ...dirArg,
      },
      run: ({ args, rawArgs }) =>
        action(async () => {
          const hosts = hostsFrom(rawArgs);
          if (hosts.length === 0)
            throw new UsageError("give serve's names with --host NAME (e.g. --host localhost --host 127.0.0.1)");
          const days = int("days", args.days, 1, 36500);
          if (existsSync(join(args.dir, "ca.key")))
            throw new UsageError(`${args.dir}/ca.key exists: this site has a CA already`);
          mkdirSync(args.dir, { recursive: true });
          const caKeys = await newKeys();
          const caPublic = await raw(caKeys.publicKey);
          const ca = { name: "Propeller site CA", key: caKeys.privateKey, publicKey: caPublic };
          const caPem = await issue({
            subject: ca.name,
            keys: caKeys,
            issuer: ca,
            ca: true,
            days: Math.max(days, 3650),
          });
          const serverKeys = await newKeys();
          const server = await issue({ subject: hosts[0]!, keys: serverKeys, issuer: ca, ca: false, hosts, days });
          const files = [
            write(args.dir, "ca.pem", caPem),
            write(args.dir, "ca.key", await privatePem(caKeys.privateKey), true),
            write(args.dir, "server.pem", server + caPem),
            write(args.dir, "server.key", await privatePem(serverKeys.privateKey), true),
          ];
          process.stdout.write(`${files.join("\n")}\n`);
          process.stderr.write(
            `serve: --tls-cert ${files[2]} --tls-key ${files[3]}; clients and proplets trust ${files[0]}\n`,
          );
        }),
    }),
    client: defineCommand({
      meta: { description: "Sign a client certificate NAME.pem / NAME.key with the site CA (for --tls-client-ca)" },
      args: {
        name: { type: "positional", description: "the client's name (a proplet id, say)", required: true },
        ...dirArg,
      },
      run: ({ args }) =>
        action(async () => {
          const keyFile = join(args.dir, "ca.key");
          if (!existsSync(keyFile)) throw new UsageError(`${keyFile} not found: run \`propeller certs create\` first`);
          const der = Buffer.from(readFileSync(keyFile, "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64");
          const caKey = await crypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]);
          const ca = { name: "Propeller site CA", key: caKey, publicKey: await publicOf(caKey) };
          const keys = await newKeys();
          const cert = await issue({
            subject: args.name,
            keys,
            issuer: ca,
            ca: false,
            days: int("days", args.days, 1, 36500),
          });
          const files = [
            write(args.dir, `${args.name}.pem`, cert),
            write(args.dir, `${args.name}.key`, await privatePem(keys.privateKey), true),
          ];
          process.stdout.write(`${files.join("\n")}\n`);
        }),
    }),
  },
});
