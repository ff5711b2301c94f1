import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../core/digest.ts";
import { Joined, joinedMqttAddress, parseJoinToken } from "../core/join.ts";
import { readCertificates, spkiHash } from "../core/x509-read.ts";
import { log } from "../log.ts";
import { UsageError } from "./args.ts";

// `propeller proplet --join URL --token T`: fetch this proplet's identity and the site CA into its data dir, once.
// With a token that pins the CA (core/join.ts), the CA is fetched without trusting anyone (`GET /join/ca`, TLS
// unverified), its key's hash is checked against the token's, and only then is the token sent (`POST /join`),
// over TLS verified by that CA: a server that is not the site's gets nothing secret. Later starts read the
// identity from the data dir and need no --join.

export const IDENTITY_FILE = "identity.json";
export const CA_FILE = "ca.pem";

/** What a joined proplet keeps in its data dir (0600: it holds its API key). */
export interface JoinedIdentity {
  entity_id: string;
  api_key: string;
  name: string;
  domain_id: string;
  channel_id: string;
  mqtt_address: string;
  url: string;
  joined_at: string;
  /** The sha256 of the join token it came from: a start with the same token needs no join, another token joins again. */
  token_sha256?: string;
}

/** How a join token is remembered beside the identity it gave (never the token itself). */
export const tokenHash = (token: string): string => sha256Hex(token.trim());

/** The identity a previous join left in `dir`, if any. */
export function readJoined(dir: string): JoinedIdentity | undefined {
  const file = join(dir, IDENTITY_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as JoinedIdentity;
  } catch (e) {
    throw new UsageError(`${file}: ${e instanceof Error ? e.message : e} (remove it to join again)`);
  }
}

/** The site CA a join left in `dir`, if any. */
export function joinedCa(dir: string): string | undefined {
  const file = join(dir, CA_FILE);
  return existsSync(file) ? readFileSync(file, "utf8") : undefined;
}

async function bounded(res: Response, max: number): Promise<string> {
  const text = await res.text();
  if (text.length > max) throw new Error(`answer of ${res.url} is larger than ${max} bytes`);
  return text;
}

const TIMEOUT_MS = 15_000;

export async function joinSite(url: string, tokenText: string, dir: string): Promise<JoinedIdentity> {
  const token = parseJoinToken(tokenText);
  if (!token) throw new UsageError("--token is not a join token (ppj_…): `propeller proplets join-token` makes one");
  // Without a scheme (`gateway:7070`, as --url takes it): https for a token that pins the site CA, else http.
  const schemed = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `${token.caHash ? "https" : "http"}://${url}`;
  if (!/^https?:\/\//i.test(schemed))
    throw new UsageError(
      `--join ${url}: give serve's REST URL (http:// or https://, its --http-port), not the broker's`,
    );
  const base = schemed.replace(/\/+$/, "");
  let ca: string | undefined;
  if (token.caHash) {
    if (!base.startsWith("https://"))
      throw new UsageError(`this join token pins the site CA: give serve's https:// URL, not ${url}`);
    // Unverified on purpose: what is fetched here is checked against the token's hash before anything is sent.
    const res = await fetch(`${base}/join/ca`, {
      tls: { rejectUnauthorized: false },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }).catch((e: Error) => {
      throw new Error(`join: cannot reach ${base}/join/ca: ${e.message}`);
    });
    if (!res.ok) throw new Error(`${base}/join/ca answered ${res.status}: is this serve, with TLS?`);
    const pem = await bounded(res, 64 * 1024);
    const first = readCertificates(pem)[0];
    const got = first ? spkiHash(first.pem) : "no certificate";
    if (got !== token.caHash)
      throw new Error(
        `the CA ${base} shows (${got}) is not the one the join token pins (${token.caHash}): refused, the token was not sent`,
      );
    ca = first!.pem;
  } else {
    log.warn("this join token pins no CA (the site has no TLS): the identity comes over an unauthenticated link");
  }
  const res = await fetch(`${base}/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: tokenText.trim() }),
    ...(ca ? { tls: { ca } } : {}),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).catch((e: Error) => {
    const hint = ca ? ` (the URL's host must be one of serve's certificate hosts: \`propeller certs list\`)` : "";
    throw new Error(`join ${base}/join: ${e.message}${hint}`);
  });
  const text = await bounded(res, 64 * 1024);
  if (res.status !== 201) {
    let why = text;
    try {
      why = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {}
    throw new Error(`join refused by ${base} (${res.status}): ${why}`);
  }
  const j = Joined.parse(JSON.parse(text));
  const identity: JoinedIdentity = {
    entity_id: j.entity_id,
    api_key: j.api_key,
    name: j.name,
    domain_id: j.domain_id,
    channel_id: j.channel_id,
    mqtt_address: joinedMqttAddress(j.mqtt, base),
    url: base,
    joined_at: new Date().toISOString(),
    token_sha256: tokenHash(tokenText),
  };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (ca) writeFileSync(join(dir, CA_FILE), ca, { mode: 0o644 });
  const file = join(dir, IDENTITY_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  log.info(`joined ${base} as proplet ${identity.entity_id} (${identity.name}); identity kept in ${file}`);
  return identity;
}
