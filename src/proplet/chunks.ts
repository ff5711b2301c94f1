import { ociDigest } from "../core/digest.ts";
import type { ChunkError, ChunkMsg } from "../core/oci.ts";

// Assembles modules that arrive in chunks on `registry/server`: out of order, duplicates ignored, a different
// `total_chunks` rejected, incomplete assemblies expired after 5 minutes. Tasks waiting for the same module
// share one assembly. Missing chunks are asked for again once when no chunk has come for a while; a waiter gives
// up after the fetch timeout with an error that says what is missing.

export const ASSEMBLY_TTL_MS = 5 * 60_000;
/** Quiet time after which the missing chunks are requested again (once). */
const REREQUEST_AFTER_MS = 2000;

interface Assembly {
  total?: number;
  parts: Map<number, Uint8Array>;
  /** Bytes of the parts kept. */
  size: number;
  digest?: string;
  createdAt: number;
  lastChunkAt: number;
  rerequested: boolean;
  waiters: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }[];
  timers: Timer[];
}

export class ChunkAssembler {
  private assemblies = new Map<string, Assembly>();
  private sweeper: Timer;

  /** `tooLarge`: why a module of so many bytes is refused (the proplet's module cap), or undefined. */
  constructor(
    private request: (app: string, chunks?: number[]) => void,
    private log: (msg: string) => void,
    private tooLarge: (bytes: number) => string | undefined = () => undefined,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  /** Requests the module (unless a request is already out) and waits for it. */
  wait(app: string, timeoutMs: number): Promise<Uint8Array> {
    let a = this.assemblies.get(app);
    const first = !a || a.waiters.length === 0;
    if (!a) {
      a = {
        parts: new Map(),
        size: 0,
        createdAt: Date.now(),
        lastChunkAt: Date.now(),
        rerequested: false,
        waiters: [],
        timers: [],
      };
      this.assemblies.set(app, a);
    }
    const asm = a;
    const p = new Promise<Uint8Array>((resolve, reject) => {
      asm.waiters.push({ resolve, reject });
      const timeout = setTimeout(() => {
        const missing = this.missing(asm);
        const got = asm.parts.size;
        this.fail(
          app,
          asm,
          new Error(
            `module ${app} did not arrive within ${timeoutMs / 1000}s: ` +
              (asm.total === undefined
                ? "no chunk received (the OCI proxy is busy with other modules, or not running)"
                : `received ${got} of ${asm.total} chunks, missing ${missing.slice(0, 20).join(", ")}${missing.length > 20 ? ", …" : ""}`),
          ),
        );
      }, timeoutMs);
      const check = setInterval(() => {
        if (asm.rerequested || Date.now() - asm.lastChunkAt < REREQUEST_AFTER_MS) return;
        asm.rerequested = true;
        const missing = this.missing(asm);
        this.log(
          `module ${app}: asking again for ${asm.total === undefined ? "all chunks" : `chunks ${missing.join(", ")}`}`,
        );
        this.request(app, asm.total === undefined ? undefined : missing);
      }, 250);
      asm.timers.push(timeout, check);
    });
    if (first) this.request(app);
    return p;
  }

  private missing(a: Assembly): number[] {
    if (a.total === undefined) return [];
    const out: number[] = [];
    for (let i = 0; i < a.total; i++) if (!a.parts.has(i)) out.push(i);
    return out;
  }

  private fail(app: string, a: Assembly, e: Error): void {
    for (const t of a.timers) clearTimeout(t);
    this.assemblies.delete(app);
    for (const w of a.waiters) w.reject(e);
  }

  onError(msg: ChunkError): void {
    const a = this.assemblies.get(msg.app_name);
    if (a?.waiters.length) this.fail(msg.app_name, a, new Error(msg.error));
  }

  onChunk(msg: ChunkMsg): void {
    const a = this.assemblies.get(msg.app_name);
    // Chunks for a module nobody here waits for are not buffered (upstream buffers every app's chunks).
    if (!a || a.waiters.length === 0) return;
    if (a.total !== undefined && a.total !== msg.total_chunks) {
      this.log(`module ${msg.app_name}: chunk says ${msg.total_chunks} chunks, earlier ones said ${a.total}: dropped`);
      return;
    }
    if (msg.chunk_idx >= msg.total_chunks) {
      this.log(`module ${msg.app_name}: chunk index ${msg.chunk_idx} out of range: dropped`);
      return;
    }
    a.total = msg.total_chunks;
    a.digest ??= msg.digest;
    a.lastChunkAt = Date.now();
    if (a.parts.has(msg.chunk_idx)) return; // duplicate: the first copy wins
    const part = Buffer.from(msg.data, "base64");
    a.size += part.length;
    const big = this.tooLarge(a.size);
    if (big) {
      this.fail(msg.app_name, a, new Error(`module ${msg.app_name}: ${big}`));
      return;
    }
    a.parts.set(msg.chunk_idx, part);
    if (a.parts.size < a.total) return;
    const bytes = new Uint8Array(Buffer.concat(Array.from({ length: a.total }, (_, i) => a.parts.get(i)!)));
    for (const t of a.timers) clearTimeout(t);
    this.assemblies.delete(msg.app_name);
    if (a.digest) {
      const got = ociDigest(bytes);
      if (got !== a.digest) {
        for (const w of a.waiters)
          w.reject(
            new Error(`module ${msg.app_name}: assembled ${bytes.length} bytes do not match digest ${a.digest}`),
          );
        return;
      }
    }
    for (const w of a.waiters) w.resolve(bytes);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [app, a] of this.assemblies) {
      if (now - a.createdAt > ASSEMBLY_TTL_MS)
        this.fail(app, a, new Error(`module ${app}: incomplete assembly expired after 5 minutes`));
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const [app, a] of this.assemblies) this.fail(app, a, new Error("proplet shutting down"));
  }
}
