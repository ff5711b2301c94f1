import { inspect, type Signature } from "../../core/wasm-info.ts";
import { instrument } from "../../core/wasm-instrument.ts";
import type { CompileJob, CompileReply, CompileRequest } from "./compile-worker.ts";

// Instrumenting and compiling modules, on a thread of their own (compile-worker.ts). Both cost seconds for a large
// module (a 27 MiB one: 2.4 s to instrument, 0.3 s to compile); on the proplet's thread, which in serve is also the
// broker's, the API's and the manager's, that stopped heartbeats and every request meanwhile. A compiled
// WebAssembly.Module is posted back (Bun clones it without recompiling: measured 0.3 ms for that module) and cached
// by modules.ts as before. `propeller wasm run`, a process of its own per run, compiles on its own thread.

/** A core module instrumented and compiled, with its exports' signatures. */
export interface CoreCompiled {
  module: WebAssembly.Module;
  functions: Map<string, Signature>;
}

/** Where modules are instrumented and compiled. */
export interface Compiler {
  core(bytes: Uint8Array, pages?: number): Promise<CoreCompiled>;
  /** A component's core modules (by jco's file name), each instrumented and compiled. */
  modules(files: [string, Uint8Array][], pages?: number): Promise<Map<string, WebAssembly.Module>>;
}

export function compileCoreHere(bytes: Uint8Array, pages?: number): CoreCompiled {
  const functions = inspect(bytes).functions;
  return { module: new WebAssembly.Module(instrument(bytes, undefined, pages).bytes), functions };
}

export function compileModulesHere(files: [string, Uint8Array][], pages?: number): Map<string, WebAssembly.Module> {
  return new Map(files.map(([name, data]) => [name, new WebAssembly.Module(instrument(data, undefined, pages).bytes)]));
}

/** On the calling thread: for `propeller wasm run`, whose process does nothing else. */
export const hereCompiler: Compiler = {
  core: async (bytes, pages) => compileCoreHere(bytes, pages),
  modules: async (files, pages) => compileModulesHere(files, pages),
};

// In the compiled executable every bundled module reports the entry's URL; the worker sits at its source path
// relative to src/ (as the pool's, pool.ts); scripts/build.ts names it as an entry point.
const workerUrl = import.meta.url.includes("/$bunfs/")
  ? new URL("./proplet/runtime/compile-worker.ts", import.meta.url).href
  : new URL("./compile-worker.ts", import.meta.url).href;

/** The thread ends after this long without work: an idle proplet holds none of its memory. */
const IDLE_MS = 30_000;
/**
 * The longest one module may take. A module comes from whoever may create tasks: one made to keep the instrumenter
 * busy would otherwise hold the thread, and every module queued after it, for good. Past this the thread is ended
 * (what waited on it fails too, saying why) and the next module starts a new one. A 64 MiB module takes ~6 s here.
 */
export const COMPILE_TIMEOUT_MS = 120_000;

type Job = { resolve: (r: CompileReply) => void; reject: (e: Error) => void };

/** One thread, started by the first module and ended when idle; modules are compiled one after another. */
export class ThreadCompiler implements Compiler {
  private worker?: Worker;
  private idle?: Timer;
  private seq = 0;
  private waiting = new Map<number, Job>();

  constructor(private timeoutMs = COMPILE_TIMEOUT_MS) {}

  async core(bytes: Uint8Array, pages?: number): Promise<CoreCompiled> {
    const r = await this.call({ kind: "core", bytes, pages });
    if (!r.ok) throw new Error(r.error);
    if (!r.core) throw new Error("the compile thread sent no module");
    return r.core;
  }

  async modules(files: [string, Uint8Array][], pages?: number): Promise<Map<string, WebAssembly.Module>> {
    const r = await this.call({ kind: "modules", files, pages });
    if (!r.ok) throw new Error(r.error);
    return r.modules ?? new Map();
  }

  /** Ends the thread, failing what waits on it with `error`. */
  private end(w: Worker, error: string): void {
    if (this.worker === w) this.worker = undefined;
    w.terminate();
    for (const job of this.waiting.values()) job.reject(new Error(error));
    this.waiting.clear();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(workerUrl);
    w.onmessage = (e: MessageEvent<CompileReply>) => {
      this.waiting.get(e.data.id)?.resolve(e.data);
      this.waiting.delete(e.data.id);
      if (this.waiting.size === 0) w.unref();
    };
    w.onerror = (e) => this.end(w, `the compile thread failed: ${e.message}`);
    this.worker = w;
    return w;
  }

  private call(req: CompileJob): Promise<CompileReply> {
    clearTimeout(this.idle);
    const w = this.thread();
    const id = ++this.seq;
    w.ref(); // a compile in flight keeps the process up; an idle thread does not
    let timer: Timer | undefined;
    return new Promise<CompileReply>((resolve, reject) => {
      // Jobs run in order on the thread: each one's clock starts when the one before it is done.
      this.waiting.set(id, { resolve, reject });
      const limit = this.timeoutMs * this.waiting.size;
      timer = setTimeout(
        () => this.end(w, `instrumenting and compiling the module took longer than ${limit / 1000}s`),
        limit,
      );
      w.postMessage({ id, ...req } satisfies CompileRequest);
    }).finally(() => {
      clearTimeout(timer);
      if (this.waiting.size > 0) return;
      this.idle = setTimeout(() => {
        if (this.worker === w && this.waiting.size === 0) {
          this.worker = undefined;
          w.terminate();
        }
      }, IDLE_MS);
      this.idle.unref();
    });
  }
}
