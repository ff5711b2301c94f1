import { INTERRUPT_MODULE, INTERRUPT_NAME } from "../../core/wasm-instrument.ts";
import { chooseComponentEntry, formatWitResult, witArgs } from "../../core/wit.ts";
import type { CompiledComponent } from "./component.ts";
import { DiskBudget } from "./disk-cap.ts";
import { type ExecRequest, type ExecResult, ended, writtenBack } from "./execute.ts";
import { errorText, guard, Interrupted } from "./guard.ts";
import { loadPreopens, savePreopen, writeBackLimit } from "./preopen.ts";
import { fromFileData, toFileData, wasiP2Imports } from "./wasi-p2.ts";

// Runs a component (component.ts) on this thread: jco's glue instantiates its instrumented core modules against
// the WASI preview-2 host, then the task's export is called with typed arguments (src/core/wit.ts), or
// `wasi:cli/run` runs it as a command whose stdout is the result.

type Instantiate = (
  getCoreModule: (name: string) => WebAssembly.Module,
  imports: Record<string, unknown>,
  instantiateCore: (m: WebAssembly.Module, imports?: Record<string, Record<string, unknown>>) => WebAssembly.Instance,
) => Record<string, unknown>;

// The glue evaluated once per component on this thread (keyed by the component object, which a worker keeps).
const glues = new WeakMap<CompiledComponent, Instantiate>();

function instantiateOf(c: CompiledComponent): Instantiate {
  let fn = glues.get(c);
  if (!fn) {
    fn = new Function(c.glue)() as Instantiate;
    glues.set(c, fn);
  }
  return fn;
}

/** cli `exit` throws this shape (preview2-shim's ComponentExit). */
function exitCodeOf(e: unknown): number | undefined {
  const x = e as { exitError?: unknown; code?: unknown } | null;
  return x && typeof x === "object" && x.exitError === true && typeof x.code === "number" ? x.code : undefined;
}

export function executeComponent(req: ExecRequest, c: CompiledComponent): ExecResult {
  const entry = chooseComponentEntry(c.world, req.name, req.options.invoke);
  if (typeof entry === "string") return { ok: false, result: "", error: entry };
  const args = entry.kind === "call" ? witArgs(entry.func, req.inputs) : [];
  if (typeof args === "string") return { ok: false, result: "", error: args };

  const g = guard(req);
  const disk = DiskBudget.ofMb(req.maxDiskMb);
  const preopens = loadPreopens(req.options.dirs).map((p) => ({ ...p, data: toFileData(p.loaded.tree) }));
  const imports = wasiP2Imports({
    argv: entry.kind === "command" ? [req.name, ...req.inputs] : [req.name],
    env: { ...req.env, ...req.options.env },
    preopens: Object.fromEntries(preopens.map((p) => [p.guest, p.data])),
    guard: g,
    stopFlag: req.stopFlag,
    budget: disk,
  });
  const interrupt = { [INTERRUPT_NAME]: g.check };
  const instantiateCore = (m: WebAssembly.Module, imp: Record<string, Record<string, unknown>> = {}) => {
    // Import objects without a prototype, as execute.ts makes them: a core module importing `constructor` (of a
    // module, or a module named so) must find nothing, not the host's Object (test/attack/wasi-imports.test.ts).
    const bare = (o: Record<string, unknown>) => Object.assign(Object.create(null) as Record<string, unknown>, o);
    const all: Record<string, Record<string, unknown>> = Object.create(null);
    for (const [name, fields] of Object.entries(imp)) all[name] = bare(fields);
    all[INTERRUPT_MODULE] = bare(interrupt);
    const instance = new WebAssembly.Instance(m, all as never);
    const memory = instance.exports.memory;
    if (memory instanceof WebAssembly.Memory) g.watch(memory); // the first module's is the guest's own
    return instance;
  };

  let result = "";
  let exitCode = 0;
  try {
    const getCoreModule = (name: string) => {
      const m = c.modules.get(name);
      if (!m) throw new Error(`component glue asked for a core module it does not have: ${name}`);
      return m;
    };
    const exports = instantiateOf(c)(getCoreModule, imports, instantiateCore);
    if (entry.kind === "command") {
      (exports.run as { run: () => void }).run();
      result = g.stdout.text();
    } else {
      const fn = exports[entry.func.js] as (...a: unknown[]) => unknown;
      result = formatWitResult(entry.func.result, fn(...args));
    }
  } catch (e) {
    if (e instanceof Interrupted) return { ok: false, result: g.stdout.text(), error: e.message };
    const code = exitCodeOf(e);
    // `wasi:cli/run` returning its error case is exit code 1, as wasmtime reports it. jco throws that as its
    // ComponentError, which carries the error case as an own `payload` (and no name of its own).
    if (code !== undefined) exitCode = code;
    else if (entry.kind === "command" && e instanceof Error && Object.hasOwn(e, "payload")) exitCode = 1;
    else return { ok: false, result: g.stdout.text(), error: errorText(e) };
    result = g.stdout.text();
  }
  const limit = writeBackLimit(preopens, disk.maxBytes);
  const refused = preopens.flatMap((p) => (p.readonly ? [] : savePreopen(p.loaded, fromFileData(p.data), limit)));
  return writtenBack(ended(result, exitCode, g.stderr.text(), entry.kind === "command"), refused);
}
