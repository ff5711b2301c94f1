import { existsSync, readdirSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import type { Key } from "openpgp";
import { readRegularFile } from "../bounded-file.ts";
import { type CosignKey, verifyCosignBlob } from "../core/cosign.ts";
import { ociDigest } from "../core/digest.ts";
import { parseReference, pickWasmLayer, type Reference } from "../core/oci.ts";
import { readPublicKeys, verifySimpleSigning } from "../core/simple-signing.ts";
import {
  candidateScopes,
  decide,
  needsSignatures,
  parseTrustPolicy,
  type Requirement,
  requirementsFor,
  type TrustCheck,
  type TrustDecision,
  type TrustGate,
  type TrustPolicy,
  type VerifiedSignature,
} from "../core/trust-policy.ts";
import { loadCosignKeys, readCosignSignatures } from "./cosign.ts";
import { readBounded } from "./http.ts";
import type { RegistryClient } from "./registry.ts";

// The trust policy with its I/O: key files, registries.d (where each registry's signatures are), lookaside reads
// and the registry's manifest digest. docs/ARCHITECTURE.md, "Trusted code". Decisions are cached by reference and
// digest for a minute: a new policy is a new verifier (SIGHUP: trust-reload.ts), a moved tag a new resolution.

/** The default registries.d, as the containers tools read it. */
export const DEFAULT_REGISTRIES_D = "/etc/containers/registries.d";
/** Signatures read per image at most, and the bytes of each. */
const MAX_SIGNATURES = 16;
const MAX_SIGNATURE_BYTES = 64 * 1024;
const CACHE_MS = 60_000;

/** A policy file that cannot be used, with the reason (serve refuses to start). */
export class TrustConfigError extends Error {}

/** A policy, key or registries.d file is at most this big. */
const MAX_FILE_BYTES = 1 << 20;

/**
 * A policy, key or registries.d file: a regular file of at most 1 MiB, so a path naming a FIFO or a device
 * (`/dev/zero`) by mistake or malice neither hangs the reader nor fills its memory (a SIGHUP reads them again).
 */
function readConfigFile(path: string): Buffer {
  return readRegularFile(path, MAX_FILE_BYTES);
}

/** An errno code when there is one (ENOENT), else the message. */
const why = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));

async function loadKeys(r: Requirement, base: string): Promise<Key[]> {
  if (r.type !== "signedBy") return [];
  const read = (p: string) => {
    const path = isAbsolute(p) ? p : join(base, p);
    try {
      return new Uint8Array(readConfigFile(path));
    } catch (e) {
      throw new TrustConfigError(`signedBy keyPath ${path}: ${why(e)}`);
    }
  };
  const names = r.keyData ? ["keyData"] : (r.keyPaths ?? [r.keyPath!]).map((p) => `keyPath ${p}`);
  const blobs = r.keyData ? [new Uint8Array(Buffer.from(r.keyData, "base64"))] : (r.keyPaths ?? [r.keyPath!]).map(read);
  const keys: Key[] = [];
  for (const [i, b] of blobs.entries()) {
    try {
      keys.push(...(await readPublicKeys(b)));
    } catch (e) {
      // A cosign key (keys create's PREFIX.pub) put under signedBy is the likely mistake: say where it belongs.
      const pem = Buffer.from(b).includes("-----BEGIN PUBLIC KEY-----")
        ? " (a PEM public key: cosign's, for a sigstoreSigned requirement)"
        : "";
      throw new TrustConfigError(`signedBy ${names[i]}: not an OpenPGP public key${pem}: ${(e as Error).message}`);
    }
    // A secret key verifies as well as its public part, and sits where a policy's keys sit (read by every host
    // that trusts it): refused, saying how to give the public one.
    if (keys.some((k) => k.isPrivate()))
      throw new TrustConfigError(
        `signedBy ${names[i]}: a secret key; give its public key instead (gpg --export --armor FINGERPRINT)`,
      );
  }
  return keys;
}

/** registries.d: `docker: {scope: {lookaside: URL}}` and `default-docker`, from every *.yaml in the directory. */
function readRegistriesD(dir: string, write = false): { scopes: Map<string, string>; fallback?: string } {
  const scopes = new Map<string, string>();
  let fallback: string | undefined;
  if (!existsSync(dir)) return { scopes };
  for (const f of readdirSync(dir)
    .filter((n) => /\.ya?ml$/.test(n))
    .sort()) {
    let doc: unknown;
    try {
      doc = Bun.YAML.parse(readConfigFile(join(dir, f)).toString("utf8"));
    } catch (e) {
      throw new TrustConfigError(`${join(dir, f)}: not YAML: ${(e as Error).message}`);
    }
    const d = (doc ?? {}) as Record<string, Record<string, Record<string, string>> | Record<string, string>>;
    // Writers prefer the staging store (as skopeo does); `sigstore` is the older name of `lookaside`.
    const url = (e: Record<string, string> | undefined) =>
      (write ? (e?.["lookaside-staging"] ?? e?.["sigstore-staging"]) : undefined) ?? e?.lookaside ?? e?.sigstore;
    const fb = url(d["default-docker"] as Record<string, string> | undefined);
    if (fb) fallback = fb;
    for (const [scope, e] of Object.entries((d.docker ?? {}) as Record<string, Record<string, string>>)) {
      const u = url(e);
      if (u) scopes.set(scope, u);
    }
  }
  return { scopes, ...(fallback ? { fallback } : {}) };
}

export class TrustVerifier implements TrustGate {
  private cache = new Map<string, { at: number; check: TrustCheck }>();
  /** Refusals by rule, for `/metrics`. */
  readonly refusals = new Map<string, number>();

  private constructor(
    readonly policy: TrustPolicy,
    private keys: Map<Requirement, Key[]>,
    private lookaside: { scopes: Map<string, string>; fallback?: string },
    private registry?: RegistryClient,
    private cosignKeys = new Map<Requirement, CosignKey[]>(),
  ) {}

  /** A policy file and a registries.d read and checked; a bad one throws TrustConfigError naming the fault. */
  static async load(policyPath: string, registriesD: string, registry?: RegistryClient): Promise<TrustVerifier> {
    let text: string;
    try {
      text = readConfigFile(policyPath).toString("utf8");
    } catch (e) {
      throw new TrustConfigError(`trust policy ${policyPath}: ${why(e)}`);
    }
    const policy = parseTrustPolicy(text);
    if (typeof policy === "string") throw new TrustConfigError(`trust policy ${policyPath}: ${policy}`);
    const all = [policy.default, ...Object.values(policy.transports?.docker ?? {})].flat();
    const keys = new Map<Requirement, Key[]>();
    const cosignKeys = new Map<Requirement, CosignKey[]>();
    for (const r of all) {
      keys.set(
        r,
        await loadKeys(r, dirname(policyPath)).catch((e) => {
          throw e instanceof TrustConfigError ? new TrustConfigError(`trust policy ${policyPath}: ${e.message}`) : e;
        }),
      );
      const ck = r.type === "sigstoreSigned" ? loadCosignKeys(r, dirname(policyPath)) : [];
      if (typeof ck === "string") throw new TrustConfigError(`trust policy ${policyPath}: ${ck}`);
      cosignKeys.set(r, ck);
    }
    const v = new TrustVerifier(policy, keys, readRegistriesD(registriesD), registry, cosignKeys);
    v.registriesD = registriesD;
    return v;
  }

  /** Where the lookaside stores were read from, for a refusal that found none. */
  registriesD = "";

  private fingerprints(r: Requirement): string[] {
    const cosign = (this.cosignKeys.get(r) ?? []).map((k) => k.fingerprint);
    return [...(this.keys.get(r) ?? []).map((k) => k.getFingerprint().toUpperCase()), ...cosign];
  }

  private allKeys(): Key[] {
    return [...this.keys.values()].flat();
  }

  private count(d: TrustDecision): void {
    if (!d.allowed) this.refusals.set(d.rule, (this.refusals.get(d.rule) ?? 0) + 1);
  }

  /** The lookaside base for a reference: the most specific registries.d scope, else default-docker. */
  lookasideFor(ref: Reference): string | undefined {
    for (const s of candidateScopes(ref)) {
      const u = this.lookaside.scopes.get(s);
      if (u) return u;
    }
    return this.lookaside.fallback;
  }

  /** Up to 16 signatures from the lookaside store: `<base>/<repo>@sha256=<hex>/signature-<n>`, n from 1. */
  private async readSignatures(ref: Reference, digest: string): Promise<Uint8Array[]> {
    const base = this.lookasideFor(ref);
    if (!base) return [];
    const out: Uint8Array[] = [];
    for (let n = 1; n <= MAX_SIGNATURES; n++) {
      const url = `${base.replace(/\/+$/, "")}/${ref.repository}@${digest.replace(":", "=")}/signature-${n}`;
      const bytes = await readLookaside(url);
      if (!bytes) break;
      out.push(bytes);
    }
    return out;
  }

  /** The signatures a trusted key verifies, and why the first of the others was not (said in a refusal). */
  private async verifyAll(blobs: Uint8Array[]): Promise<{ ok: VerifiedSignature[]; refused?: string }> {
    const keys = this.allKeys();
    if (!keys.length) return { ok: [] };
    const ok: VerifiedSignature[] = [];
    let refused: string | undefined;
    for (const b of blobs) {
      const v = await verifySimpleSigning(b, keys);
      if (!("error" in v)) ok.push(v);
      else refused ??= v.error;
    }
    return { ok, ...(refused ? { refused } : {}) };
  }

  /** The policy's decision for an image reference (its manifest digest resolved through the registry). */
  image(refText: string): Promise<TrustCheck> {
    return this.checkImage(refText);
  }

  inline(module: Uint8Array, signature?: Uint8Array): Promise<TrustCheck> {
    return this.checkInline(module, signature);
  }

  async checkImage(refText: string): Promise<TrustCheck> {
    const ref = parseReference(refText);
    // Not a registry reference (an http(s) URL): no signature can be found for it, `default` judges it.
    if (typeof ref === "string") {
      // Named as what it is: "an inline module is rejected" for an http(s) URL sent people looking for a file.
      const what = /^https?:\/\//i.test(refText)
        ? `${refText} (an http(s) URL: it carries no signatures)`
        : `${refText} (not a registry reference: ${ref.replace(`${JSON.stringify(refText)}: `, "")})`;
      const d = decide(this.policy, undefined, "", (r) => this.fingerprints(r), [], what);
      this.count(d);
      return { ...d, digest: "" };
    }
    const { reqs } = requirementsFor(this.policy, ref);
    if (!needsSignatures(reqs)) {
      const d = decide(this.policy, ref, "", (r) => this.fingerprints(r), []);
      this.count(d);
      return { ...d, digest: ref.digest ?? "" };
    }
    if (!this.registry)
      return this.refuse({ scope: "default", reason: "no registry client", rule: "none", digest: "" });
    const resolved = await this.registry.resolve(refText);
    const key = `${refText}|${resolved.top}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) {
      this.count(hit.check);
      return hit.check;
    }
    const { ok: sigs, refused } = reqs.some((r) => r.type === "signedBy")
      ? await this.verifyAll(await this.readSignatures(ref, resolved.top))
      : { ok: [] };
    // cosign's signatures, beside the manifest in the registry (proxy/cosign.ts), for a sigstoreSigned scope.
    const cosign = reqs.some((r) => r.type === "sigstoreSigned")
      ? await readCosignSignatures(this.registry, ref, resolved.top, [...this.cosignKeys.values()].flat())
      : { signatures: [] };
    const d = decide(this.policy, ref, resolved.top, (r) => this.fingerprints(r), [...sigs, ...cosign.signatures]);
    if (!d.allowed && cosign.problem) d.reason += ` (${cosign.problem})`;
    if (!d.allowed && refused) d.reason += ` (a signature there was refused: ${refused})`;
    // A signedBy scope with nowhere to look (a registries.d path mistyped, or no entry for the registry).
    if (!d.allowed && reqs.some((r) => r.type === "signedBy") && !this.lookasideFor(ref))
      d.reason += ` (no lookaside for ${ref.registry}/${ref.repository} in registries.d ${this.registriesD || "(none)"}${this.registriesD && !existsSync(this.registriesD) ? ", which does not exist" : ""})`;
    // The proplet checks the bytes it gets against the layer the signed manifest names: the module, or an encrypted
    // layer's ciphertext (which arrives in an envelope, compared before it is decrypted).
    const layer = pickWasmLayer(resolved.manifest);
    const check: TrustCheck = {
      ...d,
      digest: resolved.top,
      ...(typeof layer !== "string" ? { moduleDigest: layer.digest } : {}),
    };
    this.count(d);
    this.remember(key, check);
    return check;
  }

  /**
   * An inline module (no reference: judged by the policy's `default`): accepted when `default` accepts anything,
   * or when `signature` (a simple-signing signature, raw bytes) by a trusted key names the module's sha256, or is
   * cosign's `sign-blob` signature over the module by a trusted ECDSA key.
   */
  async checkInline(module: Uint8Array, signature?: Uint8Array): Promise<TrustCheck> {
    const digest = ociDigest(module);
    const key = `inline|${digest}|${signature ? ociDigest(signature) : ""}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) {
      this.count(hit.check);
      return hit.check;
    }
    const cosignKeys = [...this.cosignKeys.values()].flat();
    const blob = signature && cosignKeys.length ? verifyCosignBlob(module, signature, digest, cosignKeys) : undefined;
    const verified = blob ? { ok: [blob] } : signature ? await this.verifyAll([signature]) : { ok: [] };
    const d = decide(this.policy, undefined, digest, (r) => this.fingerprints(r), verified.ok);
    if (!d.allowed && verified.refused) d.reason += ` (the signature was refused: ${verified.refused})`;
    this.count(d);
    const check = { ...d, digest, moduleDigest: digest };
    this.remember(key, check);
    return check;
  }

  /** Decisions are kept a minute, at most 1,024 (then all are dropped: a flood costs verifications, not memory). */
  private remember(key: string, check: TrustCheck): void {
    if (this.cache.size >= 1024) this.cache.clear();
    this.cache.set(key, { at: Date.now(), check });
  }

  private refuse(c: Omit<TrustCheck, "allowed">): TrustCheck {
    this.count({ ...c, allowed: false });
    return { ...c, allowed: false };
  }
}

/** The first free `signature-<n>` path for a new signature of `ref`'s `digest` (file:// lookaside only). */
export function lookasideWritePath(registriesD: string, ref: Reference, digest: string): string {
  const { scopes, fallback } = readRegistriesD(registriesD, true);
  const base =
    candidateScopes(ref)
      .map((s) => scopes.get(s))
      .find(Boolean) ?? fallback;
  if (!base) throw new TrustConfigError(`no lookaside for ${ref.registry}/${ref.repository} in ${registriesD}`);
  if (!base.startsWith("file://"))
    throw new TrustConfigError(`lookaside ${base}: only a file:// store can be written (set lookaside-staging)`);
  const dir = join(decodeURIComponent(new URL(base).pathname), `${ref.repository}@${digest.replace(":", "=")}`);
  let n = 1;
  while (existsSync(join(dir, `signature-${n}`))) n++;
  return join(dir, `signature-${n}`);
}

/**
 * A lookaside signature: file:// read, http(s):// fetched; absent is undefined, and so is one that is no regular
 * file (a FIFO, a device) or is over MAX_SIGNATURE_BYTES, read no further than that (whoever writes the lookaside,
 * a signer or a CI job, must not be able to hang serve or fill its memory through it).
 */
async function readLookaside(url: string): Promise<Uint8Array | undefined> {
  if (url.startsWith("file://")) {
    const path = decodeURIComponent(new URL(url).pathname);
    try {
      return new Uint8Array(readRegularFile(path, MAX_SIGNATURE_BYTES));
    } catch {
      return undefined;
    }
  }
  if (!/^https?:\/\//.test(url)) return undefined;
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: "error" });
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    return undefined;
  }
  return readBounded(res, MAX_SIGNATURE_BYTES, "signature").catch(() => undefined);
}
