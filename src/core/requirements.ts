import { z } from "zod";
import type { PropletMetadata } from "./proplet.ts";

// Placement constraints (issue 15): what a task needs of a proplet. Labels and a TEE are claims (issue 25): the
// labels the operator set on the proplet's identity are authoritative, while those a proplet announces about
// itself (its tags, `PROPLET_TAGS=gpu=true,zone=a`: `key=value`, a bare tag is `tag=true`, and its location) and the
// TEE it reports count only when its own word is trusted (`Vouched.self`). An operator label `tee` vouches for a
// TEE. Runtime, arch and memory are facts of fit, not of trust, and are taken from its discovery metadata. Pure.

const Short = z.string().min(1).max(128);

export const Requirements = z.strictObject({
  labels: z.record(Short, z.string().max(256)).optional(),
  runtime: Short.optional(),
  arch: Short.optional(),
  /** A TEE type (`tdx`, `sev`, `sev-snp`, `sgx`), or `any` for any of them. */
  tee: Short.optional(),
  min_memory_mb: z
    .number()
    .int()
    .min(1)
    .max(1 << 24)
    .optional(),
});
export type Requirements = z.infer<typeof Requirements>;

/** The labels a proplet announced: its tags as `key=value` (a bare tag is `true`), and `location`. */
export function propletLabels(meta: PropletMetadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of meta.tags ?? []) {
    const i = tag.indexOf("=");
    if (i > 0) out[tag.slice(0, i).trim()] = tag.slice(i + 1).trim();
    else if (tag.trim()) out[tag.trim()] = "true";
  }
  if (meta.location) out.location = String(meta.location);
  return out;
}

/** What placement takes as true of a proplet besides its fit. */
export interface Vouched {
  /** Labels the operator set on its identity: authoritative. */
  labels?: Record<string, string>;
  /**
   * Its own claims count (labels, location, TEE): `serve --trust-proplet-labels`, `--no-auth` (no identities to set
   * labels on), and serve's own local proplet.
   */
  self: boolean;
}

/** A proplet whose own word is taken (and nothing set by the operator). */
export const SELF_TRUSTED: Vouched = Object.freeze({ self: true });
/** A proplet of which nothing is vouched for. */
export const UNVOUCHED: Vouched = Object.freeze({ self: false });

const NOT_TRUSTED = "self-reported, not trusted: set it on its identity, or serve --trust-proplet-labels";

const ARCH_ALIASES: Record<string, string> = { x64: "x86_64", amd64: "x86_64", arm64: "aarch64" };
const normArch = (a: string) => ARCH_ALIASES[a.toLowerCase()] ?? a.toLowerCase();

/** Whether a proplet may run the task: its own proplet when the task is pinned, and one that meets its requirements. */
export function canHost(
  task: { pinned?: boolean; proplet_id?: string; requirements?: Requirements },
  proplet: { id: string; metadata: PropletMetadata },
  vouched: Vouched,
): boolean {
  if (task.pinned && task.proplet_id && proplet.id !== task.proplet_id) return false;
  return !unmet(task.requirements, proplet.metadata, vouched);
}

const teeMeets = (req: string, tee: string | undefined) =>
  tee !== undefined && tee !== "none" && (req === "any" || tee === req);

/**
 * Why a proplet cannot take a task with these requirements, or undefined when it can; a claim that would meet it
 * but is only the proplet's own word is said to be so.
 */
export function unmet(req: Requirements | undefined, meta: PropletMetadata, vouched: Vouched): string | undefined {
  if (!req) return undefined;
  const claimed = propletLabels(meta);
  const labels = vouched.self ? { ...claimed, ...vouched.labels } : (vouched.labels ?? {});
  for (const [k, v] of Object.entries(req.labels ?? {})) {
    if (labels[k] === v) continue;
    if (claimed[k] === v) {
      if (vouched.self) return `label ${k}=${v} (it claims ${k}=${v}, its identity says ${k}=${labels[k]})`;
      return `label ${k}=${v} (it claims ${k}=${v} itself: ${NOT_TRUSTED})`;
    }
    return `label ${k}=${v}${k in labels ? ` (it has ${k}=${labels[k]})` : ""}`;
  }
  if (req.runtime && meta.wasm_runtime !== req.runtime) return `runtime ${req.runtime}`;
  if (req.arch && normArch(String(meta.cpu_arch ?? "")) !== normArch(req.arch)) return `arch ${req.arch}`;
  if (req.tee) {
    const reported = (meta as { tee?: unknown }).tee === undefined ? undefined : String(meta.tee);
    const tee = vouched.labels?.tee ?? (vouched.self ? reported : undefined);
    if (!teeMeets(req.tee, tee)) {
      if (teeMeets(req.tee, reported)) return `TEE ${req.tee} (it reports TEE ${reported} itself: ${NOT_TRUSTED})`;
      return `TEE ${req.tee}`;
    }
  }
  if (req.min_memory_mb) {
    const mb = Number(meta.total_memory_bytes ?? 0) / 1048576;
    if (mb < req.min_memory_mb) return `at least ${req.min_memory_mb} MiB of memory`;
  }
  return undefined;
}

/** In words, for a task left waiting: `labels gpu=true, arch aarch64`. */
export function describeRequirements(req: Requirements): string {
  const parts = Object.entries(req.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  if (req.runtime) parts.push(`runtime ${req.runtime}`);
  if (req.arch) parts.push(`arch ${req.arch}`);
  if (req.tee) parts.push(`TEE ${req.tee}`);
  if (req.min_memory_mb) parts.push(`≥ ${req.min_memory_mb} MiB`);
  return parts.join(", ");
}
