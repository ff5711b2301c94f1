import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ociDigest } from "../core/digest.ts";
import {
  type Descriptor,
  Manifest,
  MEDIA,
  parseChallenge,
  parseReference,
  pickFromIndex,
  pickWasmLayer,
  type Reference,
  registryScheme,
} from "../core/oci.ts";
import { ENCRYPTED_SUFFIX, encryptLayer, wrapEncrypted } from "../core/ocicrypt.ts";

// A small OCI distribution client: pull a Wasm module by reference (tag or digest, index → wasi/wasm entry,
// layer by media type, digest verified), push one as an OCI artifact. Auth: anonymous, basic, and the bearer
// token challenge. Blobs are cached by digest in the data dir; tag resolutions for a short while, so a second
// proplet asking for the same module costs no registry traffic.

export interface Credentials {
  username?: string;
  password?: string;
  /** A bearer token used as is. */
  token?: string;
}

export interface RegistryOptions {
  insecure?: string[];
  credentials?: Credentials;
  /** Directory for the blob cache; none → no cache. */
  cacheDir?: string;
  /** How long a tag → digest resolution is reused. */
  tagTtlMs?: number;
  timeoutMs?: number;
}

export class RegistryError extends Error {}

const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.dockerList].join(", ");

export class RegistryClient {
  private tokens = new Map<string, string>();
  private tags = new Map<string, { digest: string; manifest: Manifest; at: number }>();
  /** Registry requests made, for tests and figures. */
  requests = 0;

  constructor(private o: RegistryOptions = {}) {}

  private base(ref: Reference): string {
    return `${registryScheme(ref.registry, this.o.insecure ?? [])}://${ref.registry}/v2/${ref.repository}`;
  }

  private authKey(ref: Reference, write: boolean): string {
    return `${ref.registry}/${ref.repository}/${write ? "push" : "pull"}`;
  }

  private basic(): string | undefined {
    const c = this.o.credentials;
    return c?.username !== undefined ? `Basic ${btoa(`${c.username}:${c.password ?? ""}`)}` : undefined;
  }

  /** One request, answering an auth challenge once. */
  private async request(ref: Reference, url: string, init: RequestInit = {}, write = false): Promise<Response> {
    const key = this.authKey(ref, write);
    const headers = new Headers(init.headers);
    const known =
      this.tokens.get(key) ?? (this.o.credentials?.token ? `Bearer ${this.o.credentials.token}` : undefined);
    if (known) headers.set("authorization", known);
    const send = () => {
      this.requests++;
      return fetch(url, {
        ...init,
        headers,
        redirect: "follow",
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 60_000),
      });
    };
    let res: Response;
    try {
      res = await send();
    } catch (e) {
      throw new RegistryError(`cannot reach registry ${ref.registry}: ${e instanceof Error ? e.message : e}`);
    }
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
    await res.arrayBuffer();
    let auth: string | undefined;
    if (challenge.scheme === "basic") auth = this.basic();
    else if (challenge.scheme === "bearer" && challenge.params.realm)
      auth = await this.bearer(ref, challenge.params, write);
    if (!auth)
      throw new RegistryError(
        `registry ${ref.registry} asks for ${challenge.scheme || "authentication"}: give --username/--password or PROPELLER_REGISTRY_TOKEN`,
      );
    this.tokens.set(key, auth);
    headers.set("authorization", auth);
    res = await send();
    if (res.status === 401) throw new RegistryError(`registry ${ref.registry} refused the credentials (401)`);
    return res;
  }

  private async bearer(ref: Reference, p: Record<string, string>, write: boolean): Promise<string> {
    const u = new URL(p.realm!);
    if (p.service) u.searchParams.set("service", p.service);
    u.searchParams.set("scope", p.scope ?? `repository:${ref.repository}:${write ? "pull,push" : "pull"}`);
    const basic = this.basic();
    this.requests++;
    const res = await fetch(u, {
      headers: basic ? { authorization: basic } : {},
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 60_000),
    });
    if (!res.ok) throw new RegistryError(`token service ${u.origin} answered ${res.status}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token service ${u.origin} returned no token`);
    return `Bearer ${token}`;
  }

  private async manifest(ref: Reference, reference: string): Promise<{ digest: string; manifest: Manifest }> {
    const res = await this.request(ref, `${this.base(ref)}/manifests/${reference}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (!res.ok)
      throw new RegistryError(
        `manifest ${ref.repository}:${reference}: HTTP ${res.status}${res.status === 404 ? " (not found)" : ""}`,
      );
    const bytes = new Uint8Array(await res.arrayBuffer());
    const parsed = Manifest.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
    if (!parsed.success)
      throw new RegistryError(
        `manifest ${ref.repository}:${reference} is not an image manifest: ${parsed.error.issues[0]!.message}`,
      );
    const digest = res.headers.get("docker-content-digest") ?? ociDigest(bytes);
    if (reference.startsWith("sha256:") && ociDigest(bytes) !== reference)
      throw new RegistryError(`manifest digest mismatch for ${reference}`);
    return { digest, manifest: parsed.data };
  }

  /** The image manifest a reference names, following an index to its wasi/wasm entry. */
  async resolve(refText: string): Promise<{ ref: Reference; digest: string; manifest: Manifest }> {
    const ref = parseReference(refText);
    if (typeof ref === "string") throw new RegistryError(ref);
    const cacheKey = `${ref.registry}/${ref.repository}@${ref.digest ?? ref.tag}`;
    const hit = this.tags.get(cacheKey);
    if (hit && (ref.digest || Date.now() - hit.at < (this.o.tagTtlMs ?? 30_000))) return { ref, ...hit };
    let m = await this.manifest(ref, ref.digest ?? ref.tag!);
    if (m.manifest.manifests) {
      const entry = pickFromIndex(m.manifest);
      if (!entry) throw new RegistryError(`${refText}: the index lists no manifests`);
      m = await this.manifest(ref, entry.digest);
    }
    this.tags.set(cacheKey, { ...m, at: Date.now() });
    return { ref, ...m };
  }

  private cachePath(digest: string): string | undefined {
    return this.o.cacheDir ? join(this.o.cacheDir, "blobs", digest.replace(":", "-")) : undefined;
  }

  async blob(ref: Reference, d: Descriptor): Promise<Uint8Array> {
    const cached = this.cachePath(d.digest);
    if (cached && existsSync(cached)) return new Uint8Array(readFileSync(cached));
    const res = await this.request(ref, `${this.base(ref)}/blobs/${d.digest}`);
    if (!res.ok) throw new RegistryError(`blob ${d.digest}: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (ociDigest(bytes) !== d.digest) throw new RegistryError(`blob ${d.digest}: content does not match its digest`);
    if (cached) {
      mkdirSync(join(this.o.cacheDir!, "blobs"), { recursive: true });
      writeFileSync(`${cached}.tmp`, bytes);
      renameSync(`${cached}.tmp`, cached); // whole or absent, even after a crash
    }
    return bytes;
  }

  /**
   * The Wasm module a reference names, and its digest. An encrypted layer comes as it is stored, in the envelope
   * that carries its annotations to the proplet (src/core/ocicrypt.ts): only a proplet with a key can open it.
   */
  async pull(refText: string): Promise<{ bytes: Uint8Array; digest: string; encrypted: boolean }> {
    const { ref, manifest } = await this.resolve(refText);
    const layer = pickWasmLayer(manifest);
    if (typeof layer === "string") throw new RegistryError(`${refText}: ${layer}`);
    const bytes = await this.blob(ref, layer);
    if (!layer.mediaType?.endsWith(ENCRYPTED_SUFFIX)) return { bytes, digest: layer.digest, encrypted: false };
    const meta = { mediaType: layer.mediaType, annotations: layer.annotations ?? {} };
    const envelope = wrapEncrypted(bytes, meta);
    return { bytes: envelope, digest: ociDigest(envelope), encrypted: true };
  }

  private async pushBlob(
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
    const res = await this.request(
      ref,
      `${this.base(ref)}/manifests/${ref.tag}`,
      { method: "PUT", body: manifest, headers: { "content-type": MEDIA.ociManifest } },
      true,
    );
    if (res.status !== 201)
      throw new RegistryError(`pushing the manifest of ${refText}: HTTP ${res.status} ${await res.text()}`);
    this.tags.delete(`${ref.registry}/${ref.repository}@${ref.tag}`);
    return {
      digest: layer.digest,
      manifestDigest: res.headers.get("docker-content-digest") ?? ociDigest(new TextEncoder().encode(manifest)),
    };
  }
}
