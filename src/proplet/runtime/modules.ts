import { sha256Hex } from "../../core/digest.ts";
import { inspect, type Signature } from "../../core/wasm-info.ts";
import { instrument, PAGE } from "../../core/wasm-instrument.ts";

// Compiled modules cached by the sha256 of the original bytes and the memory cap they were compiled with: a module
// is instrumented and compiled once and the WebAssembly.Module is handed to workers by postMessage.

export interface Compiled {
  /** The cache key: sha256 of the bytes, and the memory cap in pages. */
  key: string;
  module: WebAssembly.Module;
  functions: Map<string, Signature>;
}

export class ModuleCache {
  private entries = new Map<string, Compiled>();
  constructor(private capacity = 64) {}

  get size(): number {
    return this.entries.size;
  }

  /** `maxMemoryMb`: the most linear memory the module may grow to (none: the Wasm limit of 4 GiB). */
  load(bytes: Uint8Array, maxMemoryMb?: number): Compiled {
    const pages = maxMemoryMb === undefined ? undefined : Math.floor((maxMemoryMb * 1024 * 1024) / PAGE);
    const key = `${sha256Hex(bytes)}:${pages ?? "-"}`;
    const hit = this.entries.get(key);
    if (hit) {
      // Re-insert to keep the map in least-recently-used order.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const info = inspect(bytes);
    const module = new WebAssembly.Module(instrument(bytes, undefined, pages).bytes);
    const compiled = { key, module, functions: info.functions };
    this.entries.set(key, compiled);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return compiled;
  }
}
