import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { certificate, pem, tbsCertificate } from "../core/x509.ts";
import { EXPIRY_WARNING_DAYS, issuedBy, readCertificates } from "../core/x509-read.ts";
import { action, int, UsageError } from "./args.ts";
import { printJson, printTable } from "./output.ts";

// `propeller certs`: a site's own certificate authority, so TLS needs no other tool. `create` makes the CA and a
// server certificate for serve (its host names and addresses); `client NAME` signs a client certificate with
// that CA, for serve's --tls-client-ca; `renew` re-issues them from the same CA (so nothing that trusts the CA
// changes); `list` and `show` tell when each expires. Keys are ECDSA P-256, written 0600.

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
  /** No later than this (the CA's own end): a certificate is worth nothing past its issuer's. */
  until?: Date;
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
    notAfter: new Date(Math.min(Date.now() + opts.days * 86_400_000, opts.until?.getTime() ?? Infinity)),
    ca: opts.ca,
    hosts: opts.hosts,
  });
  const signature = new Uint8Array(await crypto.subtle.sign(SIGN, opts.issuer.key, new Uint8Array(tbs)));
  return pem("CERTIFICATE", certificate(tbs, signature));
}

async function privatePem(k: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", new Uint8Array(await crypto.subtle.exportKey("pkcs8", k)));
}

/** Written whole or not at all (a temporary file renamed over it): serve may read it at any moment. */
function write(dir: string, file: string, text: string, secret = false): string {
  const path = join(dir, file);
  writeFileSync(`${path}.tmp`, text, { mode: secret ? 0o600 : 0o644 });
  renameSync(`${path}.tmp`, path);
  return path;
}

/** The site CA of a directory: its key and certificate, for signing. */
async function loadCa(dir: string) {
  const keyFile = join(dir, "ca.key");
  if (!existsSync(keyFile)) throw new UsageError(`${keyFile} not found: run \`propeller certs create\` first`);
  const der = Buffer.from(readFileSync(keyFile, "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64");
  const key = await crypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]);
  const caFile = join(dir, "ca.pem");
  const caPem = existsSync(caFile) ? readFileSync(caFile, "utf8") : undefined;
  const info = caPem ? readCertificates(caPem)[0] : undefined;
  return { name: info?.subject ?? "Propeller site CA", key, publicKey: await publicOf(key), pem: caPem, info };
}

/** Every `--FLAG` given (it may repeat, which citty does not keep), and comma-separated lists. */
function listFrom(rawArgs: string[], flag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`^--${flag}(?:=(.*))?$`);
  for (let i = 0; i < rawArgs.length; i++) {
    const m = re.exec(rawArgs[i]!);
    if (m) out.push(...(m[1] ?? rawArgs[++i] ?? "").split(","));
  }
  return out.map((h) => h.trim()).filter(Boolean);
}

const hostsFrom = (rawArgs: string[]) => listFrom(rawArgs, "host");

/** A PEM file's certificates as rows: what `list` and `show` print. */
function describe(file: string) {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${e instanceof Error ? e.message : e}`);
  }
  return readCertificates(text).map((c) => {
    const left = Math.floor((c.notAfter.getTime() - Date.now()) / 86_400_000);
    return {
      subject: c.subject,
      issuer: c.issuer,
      ca: c.ca,
      hosts: c.hosts.join(","),
      not_after: c.notAfter.toISOString(),
      days_left: left,
      warning: left < 0 ? "EXPIRED" : left < EXPIRY_WARNING_DAYS ? "! renew" : "",
    };
  });
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
            throw new UsageError(
              `${args.dir}/ca.key exists: this site has a CA already (\`propeller certs renew\` re-issues its certificates)`,
            );
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
          const ca = await loadCa(args.dir);
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
    renew: defineCommand({
      meta: {
        description:
          "Re-issue server.pem/server.key (and --client NAME certificates) from the existing CA: nothing that trusts the CA changes",
      },
      args: {
        host: { type: "string", description: "serve's names for the new certificate; default: the current one's" },
        client: {
          type: "string",
          description: "also renew the client certificate NAME.pem; repeat, or separate with commas",
        },
        server: {
          type: "boolean",
          description: "renew server.pem",
          negativeDescription: "renew only the --client certificates",
          default: true,
        },
        ...dirArg,
      },
      run: ({ args, rawArgs }) =>
        action(async () => {
          const days = int("days", args.days, 1, 36500);
          const ca = await loadCa(args.dir);
          if (!ca.pem || !ca.info) throw new UsageError(`${join(args.dir, "ca.pem")} not found: it goes with ca.key`);
          const caPem = ca.pem;
          const until = ca.info.notAfter;
          const renewed: string[] = [];
          const check = (file: string, text: string) => {
            if (!issuedBy(text, caPem))
              throw new UsageError(`${join(args.dir, "ca.key")} does not belong to ${join(args.dir, "ca.pem")}`);
            return file;
          };
          if (args.server) {
            const current = existsSync(join(args.dir, "server.pem"))
              ? readCertificates(readFileSync(join(args.dir, "server.pem"), "utf8"))[0]
              : undefined;
            const given = listFrom(rawArgs, "host");
            const hosts = given.length ? given : (current?.hosts ?? []);
            if (hosts.length === 0)
              throw new UsageError("give serve's names with --host NAME (no server.pem to take them from)");
            const keys = await newKeys();
            const cert = await issue({ subject: hosts[0]!, keys, issuer: ca, ca: false, hosts, days, until });
            check("server.pem", cert);
            renewed.push(write(args.dir, "server.key", await privatePem(keys.privateKey), true));
            renewed.push(write(args.dir, "server.pem", cert + caPem));
          }
          for (const name of listFrom(rawArgs, "client")) {
            const file = join(args.dir, `${name}.pem`);
            if (!existsSync(file))
              throw new UsageError(`${file} not found: \`propeller certs client ${name}\` makes it`);
            const subject = readCertificates(readFileSync(file, "utf8"))[0]?.subject ?? name;
            const keys = await newKeys();
            const cert = await issue({ subject, keys, issuer: ca, ca: false, days, until });
            check(file, cert);
            renewed.push(write(args.dir, `${name}.key`, await privatePem(keys.privateKey), true));
            renewed.push(write(args.dir, `${name}.pem`, cert));
          }
          process.stdout.write(`${renewed.join("\n")}\n`);
          if (Date.now() + days * 86_400_000 > until.getTime())
            process.stderr.write(`the CA expires on ${until.toISOString()}: the renewed certificates end then too\n`);
          process.stderr.write(
            "send serve SIGHUP (systemctl reload propeller) or restart it, and restart the proplets with renewed client certificates, to use them\n",
          );
        }),
    }),
    list: defineCommand({
      meta: {
        description: `The certificates in --dir: subject, hosts and expiry (! within ${EXPIRY_WARNING_DAYS} days)`,
      },
      args: { dir: dirArg.dir, json: { type: "boolean", description: "print JSON" } },
      run: ({ args }) =>
        action(() => {
          if (!existsSync(args.dir)) throw new UsageError(`${args.dir} not found`);
          const rows = readdirSync(args.dir)
            .filter((f) => f.endsWith(".pem"))
            .sort()
            .flatMap((f) =>
              describe(join(args.dir, f))
                .slice(0, 1)
                .map((c) => ({ file: f, ...c })),
            );
          if (args.json) return printJson({ certificates: rows });
          printTable(rows, [
            ["FILE", "file"],
            ["SUBJECT", "subject"],
            ["HOSTS", "hosts"],
            ["EXPIRES", "not_after"],
            ["DAYS LEFT", "days_left"],
            ["", "warning"],
          ]);
        }),
    }),
    show: defineCommand({
      meta: { description: "Every certificate of a PEM file (a chain): subject, issuer, hosts, expiry" },
      args: {
        file: { type: "positional", description: "a PEM file, e.g. certs/server.pem", required: true },
        json: { type: "boolean", description: "print JSON" },
      },
      run: ({ args }) =>
        action(() => {
          const certs = describe(args.file);
          if (args.json) return printJson({ certificates: certs });
          printTable(certs, [
            ["SUBJECT", "subject"],
            ["ISSUER", "issuer"],
            ["CA", "ca"],
            ["HOSTS", "hosts"],
            ["EXPIRES", "not_after"],
            ["DAYS LEFT", "days_left"],
            ["", "warning"],
          ]);
        }),
    }),
  },
});
