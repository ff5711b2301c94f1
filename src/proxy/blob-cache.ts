import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Descriptor } from "../core/oci.ts";
import { tag } from "../log.ts";

const log = tag("proxy");

// The proxy's blobs on disk, by digest, under `<dir>/blobs` (the data dir's): a second proplet asking for a module,
// or a restart, costs no registry traffic. Bounded: past `maxBytes` the least recently written go.

/** The blob cache keeps this much at most: an allowed registry's many modules cannot fill the data dir's disk. */
export const DEFAULT_CACHE_BYTES = 2 * 1024 ** 3;

export class BlobCache {
  constructor(
    private dir: string,
    private maxBytes = DEFAULT_CACHE_BYTES,
  ) {}

  private path(digest: string): string {
    return join(this.dir, "blobs", digest.replace(":", "-"));
  }

  /** Whether the blob a descriptor names is kept, whole. */
  has(d: Descriptor): boolean {
    try {
      return statSync(this.path(d.digest), { throwIfNoEntry: false })?.size === d.size;
    } catch {
      return false; // its directory is not one (ENOTDIR) or cannot be read: nothing kept
    }
  }

  read(d: Descriptor): Uint8Array | undefined {
    return this.has(d) ? new Uint8Array(readFileSync(this.path(d.digest))) : undefined;
  }

  /**
   * Keeps a verified blob. The cache is a saving, not a need: a disk that cannot take the blob (full, read-only)
   * leaves it uncached, said in the log (a full disk failed every fetch, "could not fetch the module").
   */
  keep(digest: string, bytes: Uint8Array): void {
    const file = this.path(digest);
    try {
      mkdirSync(join(this.dir, "blobs"), { recursive: true });
      writeFileSync(`${file}.tmp`, bytes);
      renameSync(`${file}.tmp`, file); // whole or absent, even after a crash
      this.trim();
    } catch (e) {
      try {
        rmSync(`${file}.tmp`, { force: true });
      } catch {} // its directory may be what failed
      log.warn(`blob cache: ${digest} not kept: ${e instanceof Error ? e.message : e}`);
    }
  }

  /** Past its bound, the least recently written blobs go (one scan per blob written). */
  private trim(): void {
    const dir = join(this.dir, "blobs");
    const files = readdirSync(dir)
      .filter((f) => f.startsWith("sha256-") && !f.endsWith(".tmp"))
      .map((f) => {
        const st = statSync(join(dir, f), { throwIfNoEntry: false });
        return { f, size: st?.size ?? 0, at: st?.mtimeMs ?? 0 };
      })
      .sort((a, b) => a.at - b.at);
    let total = files.reduce((n, x) => n + x.size, 0);
    for (const x of files) {
      if (total <= this.maxBytes) break;
      rmSync(join(dir, x.f), { force: true });
      total -= x.size;
    }
  }
}
