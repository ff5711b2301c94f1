import { z } from "zod";

// OCI distribution rules as pure functions: references, manifests, layer choice, auth challenges, chunking.

export interface Reference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/** `host[:port]/repo[:tag]` or `host[:port]/repo@sha256:…`; a name without a registry host is rejected. */
export function parseReference(ref: string): Reference | string {
  const r = ref.trim().replace(/^oci:\/\//, "");
  const slash = r.indexOf("/");
  if (slash <= 0)
    return `${JSON.stringify(ref)} is not an OCI reference: expected host[:port]/repository[:tag|@digest]`;
  const registry = r.slice(0, slash);
  if (!registry.includes(".") && !registry.includes(":") && registry !== "localhost") {
    return `${JSON.stringify(ref)}: the first part must be a registry host (e.g. registry.example.com/repo:tag)`;
  }
  let rest = r.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return `${JSON.stringify(ref)}: digest must be sha256:<64 hex>`;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(rest))
    return `${JSON.stringify(ref)}: invalid repository name ${JSON.stringify(rest)}`;
  if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag))
    return `${JSON.stringify(ref)}: invalid tag ${JSON.stringify(tag)}`;
  return {
    registry,
    repository: rest,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
    ...(!tag && !digest ? { tag: "latest" } : {}),
  };
}

export const MEDIA = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  wasmConfig: "application/vnd.wasm.config.v0+json",
  wasmLayer: "application/wasm",
} as const;

const PLAIN_WASM_LAYER_TYPES = [
  MEDIA.wasmLayer,
  "application/vnd.wasm.content.layer.v1+wasm",
  "application/vnd.module.wasm.content.layer.v1+wasm",
];
/** Wasm layers, plain or encrypted in ocicrypt's format (its media types end in `+encrypted`). */
export const WASM_LAYER_TYPES = [...PLAIN_WASM_LAYER_TYPES, ...PLAIN_WASM_LAYER_TYPES.map((t) => `${t}+encrypted`)];

const Descriptor = z.looseObject({
  mediaType: z.string().optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, "digest must be sha256"),
  size: z.number().int().nonnegative(),
  platform: z.looseObject({ os: z.string().optional(), architecture: z.string().optional() }).optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

export const Manifest = z.looseObject({
  mediaType: z.string().optional(),
  config: Descriptor.optional(),
  layers: z.array(Descriptor).optional(),
  manifests: z.array(Descriptor).optional(),
});
export type Manifest = z.infer<typeof Manifest>;

/** From an index: the `wasi/wasm` platform entry, else the first. */
export function pickFromIndex(m: Manifest): Descriptor | undefined {
  const list = m.manifests ?? [];
  return list.find((d) => d.platform?.os === "wasi" || d.platform?.architecture === "wasm") ?? list[0];
}

/** The Wasm layer by media type, else the only layer. */
export function pickWasmLayer(m: Manifest): Descriptor | string {
  const layers = m.layers ?? [];
  const wasm = layers.find((l) => l.mediaType && WASM_LAYER_TYPES.includes(l.mediaType));
  if (wasm) return wasm;
  if (layers.length === 1) return layers[0]!;
  return `manifest has ${layers.length} layers and none of a Wasm media type (${WASM_LAYER_TYPES.join(", ")})`;
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const sp = header.indexOf(" ");
  const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(sp + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!] = m[2]!;
  return { scheme, params };
}

/** Plain HTTP for localhost and for registries the operator listed; TLS otherwise. */
export function registryScheme(registry: string, insecure: readonly string[]): "http" | "https" {
  const host = registry.replace(/:\d+$/, "");
  if (
    host === "localhost" ||
    host === "127.0.0.1" ||
    host === "[::1]" ||
    insecure.includes(registry) ||
    insecure.includes(host)
  )
    return "http";
  return "https";
}

export const DEFAULT_CHUNK_SIZE = 512_000;

/** Chunk message on `registry/server`, upstream keys plus an optional whole-module digest. */
export const ChunkMsg = z.object({
  app_name: z.string().min(1),
  chunk_idx: z.number().int().nonnegative(),
  total_chunks: z.number().int().positive().max(100_000),
  data: z.string(),
  digest: z.string().optional(),
  /** Ours: the only proplet that asked; the embedded broker then delivers the chunk to it alone. */
  proplet_id: z.string().optional(),
});
export type ChunkMsg = z.infer<typeof ChunkMsg>;

/**
 * Ours: the proxy could not (or would not) serve the module; proplets fail the waiting task with this reason at
 * once. `proplet_id` names the proplet that asked: the embedded broker delivers it to that one only, and a proplet
 * ignores an error meant for another.
 */
export const ChunkError = z.object({
  app_name: z.string().min(1),
  error: z.string(),
  proplet_id: z.string().optional(),
});
export type ChunkError = z.infer<typeof ChunkError>;

export const RegistryServerMsg = z.union([ChunkMsg, ChunkError]);

/**
 * Request on `registry/proplet`; `chunks` (ours) asks for only those indices again. `proplet_id` is the asker:
 * the embedded broker stamps the sender's entity id there, whatever the proplet wrote; behind another broker it
 * is only a claim.
 */
export const ChunkRequest = z.object({
  app_name: z.string().min(1).max(1024),
  chunks: z.array(z.number().int().nonnegative()).max(100_000).optional(),
  proplet_id: z.string().max(256).optional(),
});
export type ChunkRequest = z.infer<typeof ChunkRequest>;

/** The largest manifest or index the proxy reads: real ones are a few KiB. */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Default bound on a module (a blob) the proxy fetches, in MiB. */
export const DEFAULT_MAX_MODULE_MB = 64;

/** One spelling per reference (`oci://`, whitespace and an implied `:latest` aside), to compare references. */
export function canonicalReference(text: string): string | undefined {
  const r = parseReference(text);
  if (typeof r === "string") return undefined;
  return `${r.registry.toLowerCase()}/${r.repository}${r.digest ? `@${r.digest}` : `:${r.tag}`}`;
}

/**
 * A registry list as the operator writes it (`host[:port]`, comma-separated, as docker's `auths` keys): the
 * entries lowercased, or an error naming the bad one. A host without a port means the registry on port 443 (or
 * 80), not every port of that host.
 */
export function parseRegistryList(text: string | undefined): string[] | string {
  const out: string[] = [];
  for (const raw of (text ?? "").split(",")) {
    const e = raw.trim().toLowerCase();
    if (!e) continue;
    const m =
      /^(?:[a-z0-9]([a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/.exec(e);
    if (!m || (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535)))
      return `${JSON.stringify(raw.trim())} is not a registry host[:port]`;
    out.push(e);
  }
  return out;
}

/** Whether `registry` (a reference's host[:port], or a URL's host) is one of `list` (parseRegistryList). */
export function registryListed(list: readonly string[], registry: string): boolean {
  return list.includes(registry.toLowerCase());
}
