import { z } from "zod";
import { describeZodError } from "./errors.ts";
import { nearest } from "./nearest.ts";
import type { Reference } from "./oci.ts";

// A site's trust policy in the containers-policy.json format (the file skopeo, podman and CRI-O read), and the
// decision it makes for a module: docs/ARCHITECTURE.md, "Trusted code". Pure: keys arrive as bytes, signatures
// arrive already verified (core/simple-signing.ts), the I/O is proxy/trust.ts's.

const SignedIdentity = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("matchRepoDigestOrExact") }),
  z.strictObject({ type: z.literal("matchExact") }),
  z.strictObject({ type: z.literal("matchRepository") }),
  z.strictObject({ type: z.literal("exactReference"), dockerReference: z.string().min(1) }),
  z.strictObject({ type: z.literal("exactRepository"), dockerRepository: z.string().min(1) }),
]);
export type SignedIdentity = z.infer<typeof SignedIdentity>;

const SignedBy = z
  .strictObject({
    type: z.literal("signedBy"),
    keyType: z.literal("GPGKeys", { error: 'keyType: only "GPGKeys" is supported' }),
    keyPath: z.string().min(1).optional(),
    keyPaths: z.array(z.string().min(1)).min(1).optional(),
    keyData: z.string().min(1).optional(),
    signedIdentity: SignedIdentity.optional(),
  })
  .refine((r) => [r.keyPath, r.keyPaths, r.keyData].filter((x) => x !== undefined).length === 1, {
    message: "signedBy needs exactly one of keyPath, keyPaths, keyData",
  });

const SigstoreSigned = z
  .strictObject({
    type: z.literal("sigstoreSigned"),
    keyPath: z.string().min(1).optional(),
    keyPaths: z.array(z.string().min(1)).min(1).optional(),
    keyData: z.string().min(1).optional(),
    signedIdentity: SignedIdentity.optional(),
  })
  .refine((r) => [r.keyPath, r.keyPaths, r.keyData].filter((x) => x !== undefined).length === 1, {
    message: "sigstoreSigned needs exactly one of keyPath, keyPaths, keyData (fulcio is not supported)",
  });

export const Requirement = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("reject") }),
  z.strictObject({ type: z.literal("insecureAcceptAnything") }),
  SignedBy,
  SigstoreSigned,
]);
export type Requirement = z.infer<typeof Requirement>;

const Requirements = z.array(Requirement).min(1, { error: "a scope needs at least one requirement" });

// Strict, as containers/image parses it: a misspelt "transports" must not leave only `default` in force (with an
// accepting default, every image would run).
export const TrustPolicy = z.strictObject({
  default: Requirements,
  transports: z.record(z.string(), z.record(z.string(), Requirements)).optional(),
});
export type TrustPolicy = z.infer<typeof TrustPolicy>;

/** The transports containers/image's policy.json names. */
const TRANSPORTS = [
  "docker",
  "atomic",
  "containers-storage",
  "dir",
  "docker-archive",
  "docker-daemon",
  "oci",
  "oci-archive",
  "sif",
  "tarball",
];

/** A policy file's text parsed and checked: the policy, or one line naming the field at fault. */
export function parseTrustPolicy(text: string): TrustPolicy | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  const r = TrustPolicy.safeParse(raw);
  if (!r.success) {
    const top = r.error.issues.find((i) => i.code === "unrecognized_keys" && i.path.length === 0);
    if (top && top.code === "unrecognized_keys")
      return `unknown key ${top.keys.map((k) => JSON.stringify(k)).join(", ")} at the top level (it has default and transports)`;
    return describeZodError(r.error);
  }
  // A transport containers/image does not know is ignored there; a misspelt one ("dockr") left its scopes out and
  // `default` in force: refused, naming the one meant. Other known transports are kept (and not used here).
  for (const t of Object.keys(r.data.transports ?? {})) {
    if (TRANSPORTS.includes(t)) continue;
    const near = nearest(t, TRANSPORTS);
    return `transports: unknown transport ${JSON.stringify(t)}${near ? ` (did you mean ${near}?)` : ""}; known: ${TRANSPORTS.join(", ")}`;
  }
  for (const scope of Object.keys(r.data.transports?.docker ?? {})) {
    if (scope !== "" && !/^(\*\.)?[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9._/-]+)?(:[\w.-]+|@sha256:[a-f0-9]{64})?$/.test(scope))
      return `transports.docker: invalid scope ${JSON.stringify(scope)}`;
  }
  return r.data;
}

/**
 * The scopes a reference falls under, most specific first, as containers/image's docker transport lists them:
 * the reference itself (with its tag or digest), the repository, each parent namespace, the registry host[:port],
 * then wildcards for the host's parent domains (`*.example.com`).
 */
export function candidateScopes(ref: Reference): string[] {
  const repo = `${ref.registry}/${ref.repository}`;
  const out = [ref.digest ? `${repo}@${ref.digest}` : `${repo}:${ref.tag ?? "latest"}`];
  const parts = repo.split("/");
  for (let i = parts.length; i >= 1; i--) out.push(parts.slice(0, i).join("/"));
  const host = ref.registry.replace(/:\d+$/, "");
  if (!/^[\d.]+$/.test(host) && !host.startsWith("[")) {
    const labels = host.split(".");
    for (let i = 1; i < labels.length; i++) out.push(`*.${labels.slice(i).join(".")}`);
  }
  return out;
}

/** The requirements that apply to a reference (none: an inline module, judged by `default`) and the scope named. */
export function requirementsFor(policy: TrustPolicy, ref?: Reference): { scope: string; reqs: Requirement[] } {
  const docker = policy.transports?.docker ?? {};
  if (ref) {
    for (const s of candidateScopes(ref)) if (docker[s]) return { scope: s, reqs: docker[s] };
    if (docker[""]) return { scope: "docker default", reqs: docker[""] };
  }
  return { scope: "default", reqs: policy.default };
}

/** `host/repo` of a docker reference text, or undefined when it is not one. */
function repoOf(text: string): string | undefined {
  const m = /^([^@]+?)(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/.exec(text.trim());
  const repo = m?.[1];
  if (!repo?.includes("/")) return undefined;
  return repo.toLowerCase();
}

/** The text a signature's identity is compared with: `host/repo:tag` or `host/repo@digest`. */
export function referenceText(ref: Reference): string {
  return `${ref.registry.toLowerCase()}/${ref.repository}${ref.digest ? `@${ref.digest}` : `:${ref.tag ?? "latest"}`}`;
}

/**
 * Whether a signature naming `signed` (its docker-reference) is good for the image `ref`, under signedIdentity
 * `id` (containers-policy.json(5)). An inline module has no reference: only exactReference/exactRepository can be
 * checked, the others accept any name (the digest is what binds the signature to the bytes).
 */
export function identityMatches(id: SignedIdentity | undefined, ref: Reference | undefined, signed: string): boolean {
  const type = id?.type ?? "matchRepoDigestOrExact";
  // (A cosign blob signature names no image at all: it is good for an inline module unless an exact* rule asks.)
  if (!ref && type !== "exactReference" && type !== "exactRepository") return true;
  const sRepo = repoOf(signed);
  if (!sRepo) return false;
  if (type === "exactReference") return signed.trim() === (id as { dockerReference: string }).dockerReference;
  if (type === "exactRepository") return sRepo === (id as { dockerRepository: string }).dockerRepository;
  if (!ref) return true;
  const own = referenceText(ref);
  const ownRepo = `${ref.registry.toLowerCase()}/${ref.repository}`;
  if (type === "matchRepository") return sRepo === ownRepo;
  if (type === "matchExact") return signed.trim() === own;
  // matchRepoDigestOrExact: a digest reference needs the same repository, a tag reference the same text.
  return ref.digest ? sRepo === ownRepo : signed.trim() === own;
}

/** A signature already checked cryptographically: who signed it and what it says. */
export interface VerifiedSignature {
  /** Upper-case hex fingerprint of the key that made it. */
  fingerprint: string;
  digest: string;
  identity: string;
}

/** A policy's answer for one module. */
export interface TrustDecision {
  allowed: boolean;
  scope: string;
  /** Which rule decided, for logs, `propeller verify` and a task's error. */
  reason: string;
  /** The rule's type (a refusal counter's label). */
  rule: Requirement["type"] | "none";
}

/** `3B93…E273`: a fingerprint short enough for one line, long enough to tell keys apart. */
export function shortKey(fpr: string): string {
  return fpr.length > 8 ? `${fpr.slice(0, 4)}…${fpr.slice(-4)}` : fpr;
}

/**
 * The decision: every requirement of the scope must accept (as containers/image does). `keysOf` gives the
 * fingerprints a signedBy/sigstoreSigned requirement trusts; `signatures` are those the module carries, already
 * verified by one of those keys (a signature no trusted key verifies never gets here).
 */
export function decide(
  policy: TrustPolicy,
  ref: Reference | undefined,
  digest: string,
  keysOf: (r: Requirement) => string[],
  signatures: VerifiedSignature[],
  /** What is judged, when it is neither a registry reference nor an inline module (an http(s) image_url). */
  what?: string,
): TrustDecision {
  const { scope, reqs } = requirementsFor(policy, ref);
  const name = ref ? `${ref.registry}/${ref.repository}` : (what ?? "an inline module");
  for (const r of reqs) {
    if (r.type === "reject")
      return { allowed: false, scope, rule: r.type, reason: `${name} is rejected (scope ${scope})` };
    if (r.type === "insecureAcceptAnything") continue;
    const keys = keysOf(r);
    const by = keys.map(shortKey).join(", ");
    const mine = signatures.filter((s) => keys.includes(s.fingerprint));
    if (!mine.length)
      return {
        allowed: false,
        scope,
        rule: r.type,
        reason: `${name} requires a signature by key ${by} (scope ${scope}); none found`,
      };
    const forDigest = mine.filter((s) => s.digest === digest);
    if (!forDigest.length)
      return {
        allowed: false,
        scope,
        rule: r.type,
        reason: `${name}: the signature by key ${by} is for ${mine[0]!.digest}, not ${digest} (scope ${scope})`,
      };
    if (!forDigest.some((s) => identityMatches(r.signedIdentity, ref, s.identity)))
      return {
        allowed: false,
        scope,
        rule: r.type,
        reason: `${name}: the signature by key ${by} names ${forDigest[0]!.identity}, which ${r.signedIdentity?.type ?? "matchRepoDigestOrExact"} does not accept (scope ${scope})`,
      };
  }
  const signed = reqs.some((r) => r.type === "signedBy" || r.type === "sigstoreSigned");
  return {
    allowed: true,
    scope,
    rule: signed ? reqs.find((r) => r.type !== "insecureAcceptAnything")!.type : "insecureAcceptAnything",
    reason: signed ? `${name} is signed as scope ${scope} requires` : `scope ${scope} accepts anything`,
  };
}

/** A decision with what it was about (proxy/trust.ts makes them). */
export interface TrustCheck extends TrustDecision {
  /** The manifest digest judged (an image), or the module's sha256 (inline). */
  digest: string;
  /** The sha256 of the module bytes the proplet must receive (an image's Wasm layer, an encrypted one's ciphertext). */
  moduleDigest?: string;
}

/** What the manager, the proxy and a proplet are handed to ask the site's policy (composed in src/cli). */
export interface TrustGate {
  image(ref: string): Promise<TrustCheck>;
  inline(module: Uint8Array, signature?: Uint8Array): Promise<TrustCheck>;
  /** Refusals so far by rule, for `/metrics`. */
  refusals: ReadonlyMap<string, number>;
}

/**
 * The policy's verdict on the module a task runs: its inline `file` when it has one (a proplet runs that before
 * an image_url: a signed image's task given an unsigned `file` by an update was judged by its image), else its
 * `image_url`; undefined for a task with neither. A registry that cannot be asked is a refusal: what cannot be
 * verified does not run. `field` names what was judged.
 */
export async function judgeModule(
  gate: TrustGate,
  m: { file?: string; image_url?: string; signature?: string },
): Promise<{ check: TrustCheck; field: "file" | "image_url"; module: string } | undefined> {
  if (m.file) {
    const sig = m.signature ? new Uint8Array(Buffer.from(m.signature, "base64")) : undefined;
    const check = await gate.inline(new Uint8Array(Buffer.from(m.file, "base64")), sig);
    return { check, field: "file", module: "an inline module" };
  }
  if (!m.image_url) return undefined;
  const ref = m.image_url;
  const check = await gate.image(ref).catch((e): TrustCheck => {
    const why = e instanceof Error ? e.message : String(e);
    return { allowed: false, scope: "default", rule: "none", digest: "", reason: `${ref}: cannot verify: ${why}` };
  });
  return { check, field: "image_url", module: ref };
}

/** Whether a scope's requirements need signatures at all (else no lookaside is read). */
export function needsSignatures(reqs: Requirement[]): boolean {
  return (
    reqs.some((r) => r.type === "signedBy" || r.type === "sigstoreSigned") && !reqs.some((r) => r.type === "reject")
  );
}

/** A module whose registry or signatures cannot be read is refused: what cannot be verified does not run. */
export function cannotVerify(ref: string, e: unknown): TrustCheck {
  const why = e instanceof Error ? e.message : String(e);
  return { allowed: false, scope: "default", rule: "none", digest: "", reason: `${ref}: cannot verify: ${why}` };
}
