import { z } from "zod";
import type { PropletMetadata } from "./proplet.ts";

// Placement constraints (issue 15): what a task needs of a proplet, matched against what the proplet announced.
// Labels come from its tags (`PROPLET_TAGS=gpu=true,zone=a`: `key=value`, a bare tag is `tag=true`) and its
// location; runtime, arch and TEE from its discovery metadata; memory from its total memory. Pure.

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

const ARCH_ALIASES: Record<string, string> = { x64: "x86_64", amd64: "x86_64", arm64: "aarch64" };
const normArch = (a: string) => ARCH_ALIASES[a.toLowerCase()] ?? a.toLowerCase();

/** Whether a proplet may run the task: its own proplet when the task is pinned, and one that meets its requirements. */
export function canHost(
  task: { pinned?: boolean; proplet_id?: string; requirements?: Requirements },
  proplet: { id: string; metadata: PropletMetadata },
): boolean {
  if (task.pinned && task.proplet_id && proplet.id !== task.proplet_id) return false;
  return !unmet(task.requirements, proplet.metadata);
}

/** Why a proplet cannot take a task with these requirements, or undefined when it can. */
export function unmet(req: Requirements | undefined, meta: PropletMetadata): string | undefined {
  if (!req) return undefined;
  const labels = propletLabels(meta);
  for (const [k, v] of Object.entries(req.labels ?? {})) {
    if (labels[k] !== v) return `label ${k}=${v}${k in labels ? ` (it has ${k}=${labels[k]})` : ""}`;
  }
  if (req.runtime && meta.wasm_runtime !== req.runtime) return `runtime ${req.runtime}`;
  if (req.arch && normArch(String(meta.cpu_arch ?? "")) !== normArch(req.arch)) return `arch ${req.arch}`;
  if (req.tee) {
    const tee = String((meta as { tee?: unknown }).tee ?? "none");
    if (tee === "none" || (req.tee !== "any" && tee !== req.tee)) return `TEE ${req.tee}`;
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
