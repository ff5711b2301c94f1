import { ociDigest } from "../core/digest.ts";
import type { StartMsg } from "../core/messages.ts";
import { DEFAULT_MAX_MODULE_MB, moduleTooLarge } from "../core/module-size.ts";
import { matchesApproved, unwrapEncrypted } from "../core/ocicrypt.ts";
import type { TrustCheck, TrustGate } from "../core/trust-policy.ts";
import type { ChunkAssembler } from "./chunks.ts";
import type { PropletConfig } from "./config.ts";
import { openModule } from "./decrypt.ts";
import { fetchModule, type ModuleCap } from "./fetch.ts";

// A start's module bytes: judged by this proplet's own trust policy, fetched (inline, HTTP, or the OCI proxy's
// chunks), held to the digest the trust policies approved (an encrypted one's ciphertext), then decrypted, and held to the module size cap.

/** The largest module taken; a local proplet's is serve's flag. */
export function moduleCapOf(cfg: PropletConfig): ModuleCap {
  const setting = cfg.broker ? "serve --max-module-mb" : "PROPLET_MAX_MODULE_MB";
  return { mb: cfg.maxModuleMb ?? DEFAULT_MAX_MODULE_MB, setting };
}

/** This proplet's own policy on a start's module: an image by its registry's signatures, inline by its own. */
function ownVerdict(gate: TrustGate, msg: StartMsg): Promise<TrustCheck> {
  if (msg.image_url)
    return gate.image(msg.image_url).catch((e) => ({
      allowed: false,
      scope: "default",
      rule: "none",
      digest: "",
      reason: `${msg.image_url}: cannot verify: ${e instanceof Error ? e.message : e}`,
    }));
  const sig = msg.module_signature ? new Uint8Array(Buffer.from(msg.module_signature, "base64")) : undefined;
  return gate.inline(new Uint8Array(Buffer.from(msg.file ?? "", "base64")), sig);
}

/** The digest a start's module is judged by: an envelope's ciphertext, else the bytes. */
function digestOf(bytes: Uint8Array): string {
  return ociDigest(unwrapEncrypted(bytes)?.data ?? bytes);
}

/** The start's module, ready to compile, or why it is refused (a fetch that fails throws). */
export async function loadModule(
  msg: StartMsg,
  cfg: PropletConfig,
  chunks: ChunkAssembler,
): Promise<Uint8Array | string> {
  const moduleCap = moduleCapOf(cfg);
  const wait = (ref: string) => chunks.wait(ref, cfg.fetchTimeoutMs ?? 60_000);
  // A proplet with its own trust policy judges the module before fetching it.
  const own = cfg.trust ? await ownVerdict(cfg.trust, msg) : undefined;
  if (own && !own.allowed) return `refused by this proplet's trust policy: ${own.reason}`;
  const fetched = await fetchModule(msg, wait, moduleCap);
  // An encrypted module is held to its approved ciphertext digest before anything decrypts it.
  if (own?.moduleDigest && !matchesApproved(fetched, own.moduleDigest))
    return `refused by this proplet's trust policy: the module is not the one it approved`;
  // The manager's trust policy approved these bytes (docs/ARCHITECTURE.md, "Trusted code"): no others run.
  if (msg.module_digest && !matchesApproved(fetched, msg.module_digest))
    return `refused: the module's digest ${digestOf(fetched)} is not ${msg.module_digest}, the one the trust policy approved`;
  const bytes = openModule(fetched, msg.encrypted, cfg.decryptionKeys);
  if (typeof bytes === "string") return bytes;
  const big = moduleTooLarge(bytes.length, moduleCap.mb, moduleCap.setting);
  if (big) return big;
  return bytes;
}
