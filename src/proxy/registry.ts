import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ociDigest } from "../core/digest.ts";
import { touch } from "../core/lru.ts";
import {
  DEFAULT_MAX_MODULE_MB,
  type Descriptor,
  MAX_MANIFEST_BYTES,
  Manifest,
  MEDIA,
  parseChallenge,
  parseReference,
  pickFromIndex,
  pickWasmLayer,
  type Reference,
  registryListed,
  registryScheme,
} from "../core/oci.ts";
import { ENCRYPTED_SUFFIX, encryptLayer, wrapEncrypted } from "../core/ocicrypt.ts";
import { fetchFollowing, RegistryError, readBounded, unreachable } from "./http.ts";

// A small OCI distribution client: pull a Wasm module by reference (tag or digest, index → wasi/wasm entry,
// layer by media type, digest verified), push one as an OCI artifact. Auth: anonymous, basic, and the bearer
// token challenge. Blobs are cached by digest in the data dir; tag resolutions for a short while, so a second
// proplet asking for the same module costs no registry traffic.

export interface Credentials {
  username?: string;
  password?: string;
  /** A bearer token used as is. */
  token?: string;
  /**
   * The registries (host[:port], lowercase) these credentials are for, as docker's `auths` keys: they go to no
   * other host, and to a token service (a bearer realm) only on one of these hosts.
   */
  hosts: string[];
}

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
}

export { RegistryError } from "./http.ts";

const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.dockerList].join(", ");
/** Tag resolutions and bearer tokens kept: bounded, whatever the proplets ask for. */
const MAX_CACHED = 1024;

export class RegistryClient {
  private tokens = new Map<string, string>();
  private tags = new Map<string, { digest: string; manifest: Manifest; at: number }>();
  /** Registry requests made, for tests and figures. */
  requests = 0;
  readonly maxModuleBytes: number;

  constructor(private o: RegistryOptions = {}) {
    this.maxModuleBytes = o.maxModuleBytes ?? DEFAULT_MAX_MODULE_MB << 20;
  }

  private base(ref: Reference): string {
    return `${registryScheme(ref.registry, this.o.insecure ?? [])}://${ref.registry}/v2/${ref.repository}`;
  }

  private authKey(ref: Reference, write: boolean): string {
    return `${ref.registry}/${ref.repository}/${write ? "push" : "pull"}`;
  }

  /** The credentials, if `host` is one they are for. */
  private credsFor(host: string): Credentials | undefined {
    const c = this.o.credentials;
    return c && registryListed(c.hosts, host) ? c : undefined;
  }

  private basic(host: string): string | undefined {
    const c = this.credsFor(host);
    return c?.username !== undefined ? `Basic ${btoa(`${c.username}:${c.password ?? ""}`)}` : undefined;
  }

  private get timeoutMs(): number {
    return this.o.timeoutMs ?? 60_000;
  }

  /** One request, answering an auth challenge once. */
  private async request(ref: Reference, url: string, init: RequestInit = {}, write = false): Promise<Response> {
    const key = this.authKey(ref, write);
    const headers = new Headers(init.headers);
    const token = this.credsFor(ref.registry)?.token;
    const known = this.tokens.get(key) ?? (token ? `Bearer ${token}` : undefined);
    if (known) headers.set("authorization", known);
    const send = async () => {
      try {
        return await fetchFollowing(url, { ...init, headers }, this.timeoutMs, () => this.requests++);
      } catch (e) {
        throw unreachable(ref.registry, e);
      }
    };
    let res = await send();
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
    await res.body?.cancel().catch(() => {});
    let auth: string | undefined;
    if (challenge.scheme === "basic") auth = this.basic(ref.registry);
    else if (challenge.scheme === "bearer" && challenge.params.realm)
      auth = await this.bearer(ref, challenge.params, write);
    if (!auth)
      throw new RegistryError(
        `registry ${ref.registry} asks for ${challenge.scheme || "authentication"}: give --username/--password or PROPELLER_REGISTRY_TOKEN, for this host (PROPELLER_REGISTRY_AUTH_HOSTS)`,
        "the registry asks for credentials this proxy has none for",
      );
    touch(this.tokens, key, auth, MAX_CACHED);
    headers.set("authorization", auth);
    res = await send();
    if (res.status === 401) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(
        `registry ${ref.registry} refused the credentials (401)`,
        "the registry refused the credentials (401)",
      );
    }
    return res;
  }

  /**
   * A token from the challenge's realm. The credentials go there only if its host is one they are for, and not
   * in the clear to a host that is neither loopback nor listed as insecure; else the token is asked for
   * anonymously (public registries give pull tokens so).
   */
  private async bearer(ref: Reference, p: Record<string, string>, write: boolean): Promise<string> {
    let u: URL;
    try {
      u = new URL(p.realm!);
    } catch {
      throw new RegistryError(
        `registry ${ref.registry}: bearer realm ${JSON.stringify(p.realm)} is not a URL`,
        "bad bearer realm",
      );
    }
    if (u.protocol !== "https:" && u.protocol !== "http:")
      throw new RegistryError(`registry ${ref.registry}: bearer realm ${u.protocol} refused`, "bad bearer realm");
    if (p.service) u.searchParams.set("service", p.service);
    u.searchParams.set("scope", p.scope ?? `repository:${ref.repository}:${write ? "pull,push" : "pull"}`);
    const clear = u.protocol === "http:" && registryScheme(u.host, this.o.insecure ?? []) !== "http";
    const basic = clear ? undefined : this.basic(u.host);
    const headers = new Headers(basic ? { authorization: basic } : {});
    let res: Response;
    try {
      res = await fetchFollowing(u.href, { headers }, this.timeoutMs, () => this.requests++);
    } catch (e) {
      throw unreachable(u.host, e);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(
        `token service ${u.origin} answered ${res.status}`,
        `the token service answered HTTP ${res.status}`,
      );
    }
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse(new TextDecoder().decode(await readBounded(res, 64 << 10, "token")));
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(`token service ${u.origin} answered no JSON`, "the token service answered no JSON");
    }
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token)
      throw new RegistryError(`token service ${u.origin} returned no token`, "the token service returned no token");
    return `Bearer ${token}`;
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
    const bytes = await this.body(ref, res, size ?? MAX_MANIFEST_BYTES, what, size !== undefined);
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
      if (!entry) throw new RegistryError(`${refText}: the index lists no manifests`, "the index lists no manifests");
      m = await this.manifest(ref, entry.digest, entry.size);
    }
    touch(this.tags, cacheKey, { ...m, at: Date.now() }, MAX_CACHED);
    return { ref, ...m };
  }

  private cachePath(digest: string): string | undefined {
    return this.o.cacheDir ? join(this.o.cacheDir, "blobs", digest.replace(":", "-")) : undefined;
  }

  /** A blob, read against its descriptor's size and the module bound, its digest verified. */
  async blob(ref: Reference, d: Descriptor): Promise<Uint8Array> {
    const cached = this.cachePath(d.digest);
    if (cached && existsSync(cached) && statSync(cached).size === d.size) return new Uint8Array(readFileSync(cached));
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
    if (typeof layer === "string") throw new RegistryError(`${refText}: ${layer}`, layer);
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
