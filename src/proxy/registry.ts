import { ociDigest } from "../core/digest.ts";
import { Lru } from "../core/lru.ts";
import {
  DEFAULT_MAX_MODULE_MB,
  type Descriptor,
  MAX_MANIFEST_BYTES,
  Manifest,
  MEDIA,
  parseReference,
  pickFromIndex,
  pickWasmLayer,
  type Reference,
  registryScheme,
} from "../core/oci.ts";
import { ENCRYPTED_SUFFIX, encryptLayer, wrapEncrypted } from "../core/ocicrypt.ts";
import { type Credentials, RegistryAuth } from "./auth.ts";
import { BlobCache } from "./blob-cache.ts";
import { RegistryError, type Resolve, readBounded, unreachable } from "./http.ts";

// A small OCI distribution client: pull a Wasm module by reference (tag or digest, index → wasi/wasm entry,
// layer by media type, digest verified), push one as an OCI artifact. Auth: anonymous, basic, and the bearer
// token challenge, the credentials sent only to the hosts they are for. Every body is read against a bound (a
// manifest's 4 MiB, a blob's descriptor size and the module bound). Blobs are cached by digest in the data dir
// (bounded); tag resolutions for a short while, so a second proplet asking for the same module costs no registry
// traffic.

export interface RegistryOptions {
  insecure?: string[];
  credentials?: Credentials;
  /** Directory for the blob cache; none → no cache. */
  cacheDir?: string;
  /** How long a tag → digest resolution is reused. */
  tagTtlMs?: number;
  timeoutMs?: number;
  /** The largest module (blob) fetched; a descriptor that says more is refused before any byte is read. */
  maxModuleBytes?: number;
  /** The blob cache's bound on disk. */
  cacheMaxBytes?: number;
  /** Host names to addresses, for the inward checks (tests; the system's resolver otherwise). */
  resolve?: Resolve;
}

export type { Credentials } from "./auth.ts";
export { DEFAULT_CACHE_BYTES } from "./blob-cache.ts";
export { RegistryError } from "./http.ts";

const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.dockerList].join(", ");
/** Tag resolutions kept: bounded, whatever the proplets ask for. */
const MAX_CACHED = 1024;
/** A registry request's time limit. */
export const REGISTRY_TIMEOUT_MS = 45_000;
/** The limit on a registry's answer to start (its headers): one that never answers gives its fetch slot back. */
export const REGISTRY_HEADERS_TIMEOUT_MS = 15_000;

const cacheKey = (ref: Reference) => `${ref.registry}/${ref.repository}@${ref.digest ?? ref.tag}`;

export class RegistryClient {
  private auth: RegistryAuth;
  private tags = new Lru<string, { digest: string; top: string; manifest: Manifest; at: number }>(MAX_CACHED);
  /** Registry requests made, for tests and figures. */
  requests = 0;
  readonly maxModuleBytes: number;

  private cache: BlobCache | undefined;

  constructor(private o: RegistryOptions = {}) {
    this.maxModuleBytes = o.maxModuleBytes ?? DEFAULT_MAX_MODULE_MB << 20;
    this.cache = o.cacheDir ? new BlobCache(o.cacheDir, o.cacheMaxBytes) : undefined;
    this.auth = new RegistryAuth({
      ...(o.credentials ? { credentials: o.credentials } : {}),
      insecure: o.insecure ?? [],
      follow: {
        // Under a proplet's 60 s wait for the chunks (proplet/module-source.ts): the proxy's "registry timed out"
        // reaches it before it gives up.
        timeoutMs: o.timeoutMs ?? REGISTRY_TIMEOUT_MS,
        headersMs: Math.min(o.timeoutMs ?? REGISTRY_TIMEOUT_MS, REGISTRY_HEADERS_TIMEOUT_MS),
        count: () => this.requests++,
        ...(o.resolve ? { resolve: o.resolve } : {}),
      },
    });
  }

  /** One request, answering an auth challenge once. */
  private request(ref: Reference, url: string, init: RequestInit = {}, write = false): Promise<Response> {
    return this.auth.request(ref, url, init, write);
  }

  private base(ref: Reference): string {
    return `${registryScheme(ref.registry, this.o.insecure ?? [])}://${ref.registry}/v2/${ref.repository}`;
  }

  /** A body, its read bounded; a stall or reset while reading is the registry being unreachable. */
  private async body(ref: Reference, res: Response, limit: number, what: string, exact: boolean): Promise<Uint8Array> {
    try {
      return await readBounded(res, limit, what, exact);
    } catch (e) {
      throw unreachable(ref.registry, e);
    }
  }

  private async manifest(
    ref: Reference,
    reference: string,
    size?: number,
    limit = MAX_MANIFEST_BYTES,
  ): Promise<{ digest: string; manifest: Manifest }> {
    const what = `manifest ${ref.repository}:${reference}`;
    if (size !== undefined && size > MAX_MANIFEST_BYTES)
      throw new RegistryError(
        `${what}: its descriptor says ${size} bytes`,
        `${what} is larger than ${MAX_MANIFEST_BYTES} bytes`,
      );
    const res = await this.request(ref, `${this.base(ref)}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      const msg = `${what}: HTTP ${res.status}${res.status === 404 ? " (not found)" : ""}`;
      throw new RegistryError(msg);
    }
    const bytes = await this.body(ref, res, size ?? limit, what, size !== undefined);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new RegistryError(`${what} is not JSON`);
    }
    const parsed = Manifest.safeParse(json);
    if (!parsed.success)
      throw new RegistryError(`${what} is not an image manifest: ${parsed.error.issues[0]!.message}`);
    const actual = ociDigest(bytes);
    if (reference.startsWith("sha256:") && actual !== reference)
      throw new RegistryError(`manifest digest mismatch for ${reference}`);
    return { digest: actual, manifest: parsed.data };
  }

  /**
   * The image manifest a reference names, following an index to its wasi/wasm entry; `top` is the digest of what
   * the reference itself names (the index's, else the manifest's): the digest a signature covers.
   */
  async resolve(refText: string): Promise<{ ref: Reference; digest: string; top: string; manifest: Manifest }> {
    const ref = parseReference(refText);
    if (typeof ref === "string") throw new RegistryError(ref);
    const hit = this.kept(ref);
    if (hit) return { ref, ...hit };
    let m = await this.manifest(ref, ref.digest ?? ref.tag!);
    const top = m.digest;
    if (m.manifest.manifests) {
      const entry = pickFromIndex(m.manifest);
      if (!entry) throw new RegistryError(`${refText}: the index lists no manifests`, "the index lists no manifests");
      m = await this.manifest(ref, entry.digest, entry.size);
    }
    this.tags.set(cacheKey(ref), { ...m, top, at: Date.now() });
    return { ref, ...m, top };
  }

  /** A resolution still good: by digest for ever, by tag for a while. */
  private kept(ref: Reference) {
    const hit = this.tags.get(cacheKey(ref));
    return hit && (ref.digest || Date.now() - hit.at < (this.o.tagTtlMs ?? 30_000)) ? hit : undefined;
  }

  /** Whether `pull(refText)` would make no registry request: its resolution and its blob are both kept. */
  ready(refText: string): boolean {
    const ref = parseReference(refText);
    const hit = typeof ref === "string" ? undefined : this.kept(ref);
    const layer = hit && pickWasmLayer(hit.manifest);
    if (!layer || typeof layer === "string") return false;
    return this.cache?.has(layer) ?? false;
  }

  /** A manifest by tag, its body bounded by `limit` (a cosign `.sig` manifest is small); an absent tag is undefined. */
  async manifestByTag(
    ref: Reference,
    tag: string,
    limit: number,
  ): Promise<{ digest: string; manifest: Manifest } | undefined> {
    try {
      return await this.manifest(ref, tag, undefined, limit);
    } catch (e) {
      if (e instanceof RegistryError && e.message.includes("HTTP 404")) return undefined;
      throw e;
    }
  }

  /** A blob, read against its descriptor's size and the module bound, its digest verified. */
  async blob(ref: Reference, d: Descriptor): Promise<Uint8Array> {
    const cached = this.cache?.read(d);
    if (cached) return cached;
    const what = `blob ${d.digest}`;
    if (d.size > this.maxModuleBytes)
      throw new RegistryError(
        `${what}: its descriptor says ${d.size} bytes, more than the limit of ${this.maxModuleBytes} (--max-module-mb)`,
        `the module is ${d.size} bytes, more than this proxy's limit of ${this.maxModuleBytes}`,
      );
    const res = await this.request(ref, `${this.base(ref)}/blobs/${d.digest}`);
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(`${what}: HTTP ${res.status}`);
    }
    const bytes = await this.body(ref, res, d.size, what, true);
    if (ociDigest(bytes) !== d.digest) throw new RegistryError(`${what}: content does not match its digest`);
    this.cache?.keep(d.digest, bytes);
    return bytes;
  }

  /**
   * The Wasm module a reference names, and its digest. An encrypted layer comes as it is stored, in the envelope
   * that carries its annotations to the proplet (src/core/ocicrypt.ts): only a proplet with a key can open it.
   */
  async pull(refText: string): Promise<{ bytes: Uint8Array; digest: string; encrypted: boolean }> {
    const { ref, manifest } = await this.resolve(refText);
    const layer = pickWasmLayer(manifest);
    if (typeof layer === "string") throw new RegistryError(`${refText}: ${layer}`, layer);
    const bytes = await this.blob(ref, layer);
    if (!layer.mediaType?.endsWith(ENCRYPTED_SUFFIX)) return { bytes, digest: layer.digest, encrypted: false };
    const meta = { mediaType: layer.mediaType, annotations: layer.annotations ?? {} };
    const envelope = wrapEncrypted(bytes, meta);
    return { bytes: envelope, digest: ociDigest(envelope), encrypted: true };
  }

  async pushBlob(
    ref: Reference,
    bytes: Uint8Array,
    progress?: (done: number, total: number) => void,
  ): Promise<Descriptor> {
    const digest = ociDigest(bytes);
    const head = await this.request(ref, `${this.base(ref)}/blobs/${digest}`, { method: "HEAD" }, true);
    if (head.ok) {
      progress?.(bytes.length, bytes.length);
      return { digest, size: bytes.length };
    }
    const start = await this.request(ref, `${this.base(ref)}/blobs/uploads/`, { method: "POST" }, true);
    if (start.status !== 202) throw new RegistryError(`starting an upload to ${ref.repository}: HTTP ${start.status}`);
    let location = new URL(start.headers.get("location") ?? "", `${this.base(ref)}/`).href;
    // Chunks, so a large module shows progress; the registry assembles them.
    const CHUNK = 4 << 20;
    for (let off = 0; off < bytes.length; off += CHUNK) {
      const part = bytes.subarray(off, Math.min(off + CHUNK, bytes.length));
      const res = await this.request(
        ref,
        location,
        {
          method: "PATCH",
          body: part,
          headers: { "content-type": "application/octet-stream", "content-range": `${off}-${off + part.length - 1}` },
        },
        true,
      );
      if (res.status !== 202) throw new RegistryError(`uploading to ${ref.repository}: HTTP ${res.status}`);
      location = new URL(res.headers.get("location") ?? location, `${this.base(ref)}/`).href;
      progress?.(off + part.length, bytes.length);
    }
    const done = await this.request(
      ref,
      `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`,
      { method: "PUT" },
      true,
    );
    if (done.status !== 201)
      throw new RegistryError(`finishing the upload to ${ref.repository}: HTTP ${done.status} ${await done.text()}`);
    return { digest, size: bytes.length };
  }

  /**
   * Pushes a module as an OCI artifact (the layout oras and the wasm-to-oci tools read); with `recipients` (RSA
   * public keys, PEM) its layer is encrypted in ocicrypt's format first.
   */
  async push(
    refText: string,
    plainModule: Uint8Array,
    progress?: (done: number, total: number) => void,
    recipients: string[] = [],
  ): Promise<{ digest: string; manifestDigest: string }> {
    const encrypted = recipients.length ? encryptLayer(plainModule, recipients) : undefined;
    const module = encrypted?.data ?? plainModule;
    const ref = parseReference(refText);
    if (typeof ref === "string") throw new RegistryError(ref);
    if (ref.digest) throw new RegistryError(`push needs a tag, not a digest: ${refText}`);
    const layer = await this.pushBlob(ref, module, progress);
    const config = await this.pushBlob(ref, new TextEncoder().encode("{}"));
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      artifactType: MEDIA.wasmConfig,
      config: { mediaType: MEDIA.wasmConfig, ...config },
      layers: [
        encrypted
          ? { mediaType: `${MEDIA.wasmLayer}${ENCRYPTED_SUFFIX}`, ...layer, annotations: encrypted.annotations }
          : { mediaType: MEDIA.wasmLayer, ...layer },
      ],
    });
    return { digest: layer.digest, manifestDigest: await this.putManifest(ref, ref.tag!, manifest) };
  }

  /** An OCI image manifest (JSON text) put under `tag`; its digest. */
  async putManifest(ref: Reference, tag: string, manifest: string): Promise<string> {
    const res = await this.request(
      ref,
      `${this.base(ref)}/manifests/${tag}`,
      { method: "PUT", body: manifest, headers: { "content-type": MEDIA.ociManifest } },
      true,
    );
    if (res.status !== 201)
      throw new RegistryError(
        `pushing the manifest of ${ref.repository}:${tag}: HTTP ${res.status} ${await res.text()}`,
      );
    this.tags.delete(`${ref.registry}/${ref.repository}@${tag}`);
    return res.headers.get("docker-content-digest") ?? ociDigest(new TextEncoder().encode(manifest));
  }
}
