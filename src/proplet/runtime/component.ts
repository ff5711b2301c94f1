import { parseWorld, type World } from "../../core/wit.ts";
import type { Compiler } from "./compiler.ts";
import type { TranspileReply, TranspileRequest } from "./transpile-worker.ts";

// Wasm components (WASI preview 2) on the in-process runtime: Bytecode Alliance's jco transpiles a component into
// its core modules and the JS glue that lifts and lowers values between them (instantiation mode "sync": the glue
// takes the imports and a function that instantiates a core module). Each core module is instrumented with the
// interrupt check like any task's module, so stop and timeout end a spinning component too; the glue runs in a
// pool worker against our WASI preview-2 host (wasi-p2.ts). jco runs on a thread of its own, started by the first
// component and ended when none has come for a while: a proplet that does not run components holds none of it.

/**
 * The interfaces the host in wasi-p2.ts provides, by the names jco's glue asks for (without a version). Listed here
 * so the proplet's thread can refuse a component that imports anything else without loading that host.
 */
export const PROVIDED = [
  "wasi:cli/environment",
  "wasi:cli/exit",
  "wasi:cli/stdin",
  "wasi:cli/stdout",
  "wasi:cli/stderr",
  "wasi:cli/terminal-input",
  "wasi:cli/terminal-output",
  "wasi:cli/terminal-stdin",
  "wasi:cli/terminal-stdout",
  "wasi:cli/terminal-stderr",
  "wasi:clocks/monotonic-clock",
  "wasi:clocks/wall-clock",
  "wasi:filesystem/preopens",
  "wasi:filesystem/types",
  "wasi:io/error",
  "wasi:io/poll",
  "wasi:io/streams",
  "wasi:random/random",
  "wasi:random/insecure",
  "wasi:random/insecure-seed",
] as const;

/** A component made ready to run: cached and sent to workers like a core module. */
export interface CompiledComponent {
  kind: "component";
  /** jco's glue with its `export` keywords taken off, the body of a function returning `instantiate`. */
  glue: string;
  /** The core modules the glue asks for by file name, instrumented and compiled. */
  modules: Map<string, WebAssembly.Module>;
  world: World;
}

// In the compiled executable every bundled module reports the entry's URL; the worker sits at its source path
// relative to src/ (as the pool's, pool.ts).
const workerUrl = import.meta.url.includes("/$bunfs/")
  ? new URL("./proplet/runtime/transpile-worker.ts", import.meta.url).href
  : new URL("./transpile-worker.ts", import.meta.url).href;

/** jco's thread is ended after this long without a component: its memory is not kept for the next one. */
const IDLE_MS = 30_000;

let worker: Worker | undefined;
let idle: Timer | undefined;
let seq = 0;
const waiting = new Map<number, (r: TranspileReply) => void>();

/**
 * The longest a transpile may take. A component comes from whoever may create tasks: one made to keep jco busy
 * would otherwise hold its thread, and every component after it, for good. Past this the thread is ended (what
 * waited fails too, saying why) and the next component starts a new one.
 */
const TRANSPILE_TIMEOUT_MS = 30_000;

/** Ends jco's thread, failing what waits on it with `error`. */
function endThread(w: Worker, error: string): void {
  for (const [id, settle] of waiting) settle({ id, ok: false, error });
  waiting.clear();
  if (worker === w) worker = undefined;
  w.terminate();
}

function transpile(bytes: Uint8Array, timeoutMs: number): Promise<TranspileReply> {
  clearTimeout(idle);
  if (!worker) {
    const w = new Worker(workerUrl);
    w.onmessage = (e: MessageEvent<TranspileReply>) => {
      waiting.get(e.data.id)?.(e.data);
      waiting.delete(e.data.id);
      if (waiting.size === 0) w.unref();
    };
    w.onerror = (e) => endThread(w, `jco's thread failed: ${e.message}`);
    worker = w;
  }
  const w = worker;
  const id = ++seq;
  w.ref(); // a transpile in flight keeps the process up; an idle jco thread does not
  let timer: Timer | undefined;
  return new Promise<TranspileReply>((resolve) => {
    waiting.set(id, resolve);
    timer = setTimeout(
      () => endThread(w, `transpiling the component took longer than ${timeoutMs / 1000}s`),
      timeoutMs,
    );
    w.postMessage({ id, bytes } satisfies TranspileRequest);
  }).finally(() => {
    clearTimeout(timer);
    if (waiting.size > 0) return;
    idle = setTimeout(() => {
      if (worker === w && waiting.size === 0) {
        worker = undefined;
        w.terminate();
      }
    }, IDLE_MS);
    idle.unref();
  });
}

// What jco's glue may declare at its top level: anything else (an import, another export) is refused, since the
// glue is evaluated as a plain function body.
const TOP_LEVEL = /^(export|import)\b.*$/gm;
const EXPECTED = [/^export function instantiate\(/, /^export const _util = /];

/** Glue as a function body: `export` removed from the two declarations jco writes, `instantiate` returned. */
function glueBody(js: string): string {
  for (const m of js.matchAll(TOP_LEVEL)) {
    if (!EXPECTED.some((re) => re.test(m[0]))) throw new Error(`unexpected declaration in jco's output: ${m[0]}`);
  }
  return `${js.replace(/^export (function instantiate|const _util)/gm, "$1")}\nreturn instantiate;`;
}

/**
 * Transpiles and compiles a component; `pages` caps each core module's linear memory. The core modules are
 * instrumented and compiled by `compiler` (on its thread, as a core module's).
 */
export async function compileComponent(
  bytes: Uint8Array,
  pages: number | undefined,
  compiler: Compiler,
  timeoutMs = TRANSPILE_TIMEOUT_MS,
): Promise<CompiledComponent> {
  const out = await transpile(bytes, timeoutMs);
  if (!out.ok) throw new Error(`invalid component: ${out.error}`);
  // Refused before its core modules are instrumented and compiled, which is the costly part.
  const missing = out.imports.filter((i) => !(PROVIDED as readonly string[]).includes(i));
  if (missing.length) {
    throw new Error(
      `the component imports ${missing.join(", ")}, which this runtime does not provide (it provides wasi:cli, wasi:clocks, wasi:filesystem, wasi:io and wasi:random)`,
    );
  }
  const world = parseWorld(out.wit);
  const js = out.files.find(([name]) => name.endsWith(".js"));
  if (!js) throw new Error("invalid component: jco produced no glue");
  const glue = glueBody(new TextDecoder().decode(js[1]));
  const modules = await compiler.modules(
    out.files.filter(([name]) => name.endsWith(".wasm")),
    pages,
  );
  return { kind: "component", glue, modules, world };
}
