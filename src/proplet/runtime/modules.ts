import { sha256Hex } from "../../core/digest.ts";
import { inspect, type Signature } from "../../core/wasm-info.ts";
import { instrument } from "../../core/wasm-instrument.ts";

// Compiled modules cached by sha256 of the original bytes: a module is instrumented and compiled once and the
// WebAssembly.Module is handed to workers by postMessage.

export interface Compiled {
  sha256: string;
  module: WebAssembly.Module;
  functions: Map<string, Signature>;
}

export class ModuleCache {
  private entries = new Map<string, Compiled>();
  constructor(private capacity = 64) {}

  get size(): number {
    return this.entries.size;
  }

  load(bytes: Uint8Array): Compiled {
    const sha256 = sha256Hex(bytes);
    const hit = this.entries.get(sha256);
    if (hit) {
      // Re-insert to keep the map in least-recently-used order.
      this.entries.delete(sha256);
      this.entries.set(sha256, hit);
      return hit;
    }
    const info = inspect(bytes);
    const module = new WebAssembly.Module(instrument(bytes).bytes);
    const compiled = { sha256, module, functions: info.functions };
    this.entries.set(sha256, compiled);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return compiled;
  }
}
