import { sha256Hex } from "../../core/digest.ts";
import { Lru } from "../../core/lru.ts";
import { isComponent } from "../../core/wasm-binary.ts";
import type { Signature } from "../../core/wasm-info.ts";
import { PAGE } from "../../core/wasm-instrument.ts";
import { type Compiler, ThreadCompiler } from "./compiler.ts";
import { type CompiledComponent, compileComponent } from "./component.ts";

// Compiled modules cached by the sha256 of the original bytes and the memory cap they were compiled with: a module
// is instrumented and compiled once, on the compile thread (compiler.ts), and the WebAssembly.Module is handed to
// workers by postMessage. A component is transpiled once the same way (component.ts).

export interface CompiledCore {
  kind: "core";
  module: WebAssembly.Module;
  functions: Map<string, Signature>;
}

/** What a worker needs to run a module or a component. */
export type Runnable = CompiledCore | CompiledComponent;

/** A cache entry: the runnable and its key, the sha256 of the bytes and the memory cap in pages. */
export type Compiled = Runnable & { key: string };

export class ModuleCache {
  private entries: Lru<string, Promise<Compiled>>;
  constructor(
    capacity = 64,
    private compiler: Compiler = new ThreadCompiler(),
  ) {
    this.entries = new Lru(capacity);
  }

  get size(): number {
    return this.entries.size;
  }

  /** `maxMemoryMb`: the most linear memory the module may grow to (none: the Wasm limit of 4 GiB). */
  load(bytes: Uint8Array, maxMemoryMb?: number): Promise<Compiled> {
    const pages = maxMemoryMb === undefined ? undefined : Math.floor((maxMemoryMb * 1024 * 1024) / PAGE);
    const key = `${sha256Hex(bytes)}:${pages ?? "-"}`;
    const hit = this.entries.get(key);
    if (hit) return hit;
    const compiled = compile(bytes, pages, this.compiler).then((r) => ({ ...r, key }));
    // A module that fails to compile is not kept: the next task gets the same error afresh, not a stale promise.
    compiled.catch(() => this.entries.peek(key) === compiled && this.entries.delete(key));
    this.entries.set(key, compiled);
    return compiled;
  }
}

async function compile(bytes: Uint8Array, pages: number | undefined, compiler: Compiler): Promise<Runnable> {
  if (isComponent(bytes)) return compileComponent(bytes, pages, compiler);
  return { kind: "core", ...(await compiler.core(bytes, pages)) };
}
