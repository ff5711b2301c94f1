import { instrument } from "../../core/wasm-instrument.ts";
import { parseWorld, type World } from "../../core/wit.ts";

// Wasm components (WASI preview 2) on the in-process runtime: Bytecode Alliance's jco transpiles a component into
// its core modules and the JS glue that lifts and lowers values between them (instantiation mode "sync": the glue
// takes the imports and a function that instantiates a core module). Each core module is instrumented with the
// interrupt check like any task's module, so stop and timeout end a spinning component too; the glue runs in a
// pool worker against our WASI preview-2 host (wasi-p2.ts). jco is loaded on the first component only: a proplet
// that never sees one holds none of it.

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

type Jco = {
  generate: typeof import("@bytecodealliance/jco-transpile/component").generate;
  wit: (bytes: Uint8Array) => Promise<string>;
};
let jco: Promise<Jco> | undefined;

function loadJco(): Promise<Jco> {
  jco ??= (async () => {
    const [bindgen, tools] = await Promise.all([
      import("@bytecodealliance/jco-transpile/component"),
      import("@bytecodealliance/jco-transpile/wasm-tools"),
    ]);
    await bindgen.$init;
    return { generate: bindgen.generate, wit: tools.componentWit };
  })();
  return jco;
}

// What jco's glue may declare at its top level: anything else (an import, another export) is refused, since the
// glue is evaluated as a plain function body.
const TOP_LEVEL = /^(export|import)\b.*$/gm;
const EXPECTED = [/^export function instantiate\(/, /^export const _util = /];

/** Glue as a function body: `export` removed from the two declarations jco writes, `instantiate` returned. */
export function glueBody(js: string): string {
  for (const m of js.matchAll(TOP_LEVEL)) {
    if (!EXPECTED.some((re) => re.test(m[0]))) throw new Error(`unexpected declaration in jco's output: ${m[0]}`);
  }
  return `${js.replace(/^export (function instantiate|const _util)/gm, "$1")}\nreturn instantiate;`;
}

/** Transpiles and compiles a component; `pages` caps each core module's linear memory. */
export async function compileComponent(bytes: Uint8Array, pages?: number): Promise<CompiledComponent> {
  const { generate, wit } = await loadJco();
  let world: World;
  let out: ReturnType<typeof generate>;
  try {
    world = parseWorld(await wit(bytes));
    out = generate(bytes, {
      name: "component",
      instantiation: { tag: "sync" },
      noTypescript: true,
      noNodejsCompat: true,
      base64Cutoff: 0, // every core module as its own file: each is instrumented before it is compiled
      map: [],
    });
  } catch (e) {
    throw new Error(`invalid component: ${e instanceof Error ? e.message : String(e)}`);
  }
  let glue = "";
  const modules = new Map<string, WebAssembly.Module>();
  for (const [name, data] of out.files) {
    if (name.endsWith(".js")) glue = glueBody(new TextDecoder().decode(data));
    else if (name.endsWith(".wasm"))
      modules.set(name, new WebAssembly.Module(instrument(data, undefined, pages).bytes));
  }
  if (!glue) throw new Error("invalid component: jco produced no glue");
  const missing = out.imports.filter((i) => !(PROVIDED as readonly string[]).includes(i));
  if (missing.length) {
    throw new Error(
      `the component imports ${missing.join(", ")}, which this runtime does not provide (it provides wasi:cli, wasi:clocks, wasi:filesystem, wasi:io and wasi:random)`,
    );
  }
  return { kind: "component", glue, modules, world };
}
