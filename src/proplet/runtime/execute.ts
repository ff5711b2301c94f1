import { ConsoleStdout, File, OpenFile, PreopenDirectory, WASI, WASIProcExit } from "@bjorn3/browser_wasi_shim";
import { clipError } from "../../core/clip.ts";
import { chooseEntry, formatResult, parseArgs } from "../../core/wasm-call.ts";
import { INTERRUPT_MODULE, INTERRUPT_NAME } from "../../core/wasm-instrument.ts";
import { DiskBudget } from "./disk-cap.ts";
import { executeComponent } from "./execute-component.ts";
import { errorText, guard, Interrupted } from "./guard.ts";
import type { CompiledCore, Runnable } from "./modules.ts";
import type { OutputTap } from "./output.ts";
import { loadPreopens, notWrittenBack, savePreopen, writeBackLimit } from "./preopen.ts";
import type { RunRequest } from "./protocol.ts";
import { capWasi } from "./wasi-p1-cap.ts";

// Runs one task's module or component (already instrumented and compiled) to completion. Used inside a pool worker
// and by `propeller wasm run`. WASI comes from @bjorn3/browser_wasi_shim: Bun's node:wasi exits the whole host on
// proc_exit and ignores stdout capture (docs/ARCHITECTURE.md, "Measured traps"); a component's WASI preview 2 from
// wasi-p2.ts.

export interface ExecRequest extends RunRequest {
  runnable: Runnable;
  /**
   * Int32 slots shared with the owner: [0] set to 1 to stop the task; written here for task metrics: [1] linear
   * memory pages, [2] this thread's CPU time in clock ticks (when the stop flag has room for it).
   */
  stopFlag: Int32Array;
  /** Cap on captured stdout and stderr, each. */
  outputLimit: number;
  /**
   * For a task run as a child process: the parent's pid. If the parent dies (a proplet killed with -9), the
   * child would spin on as an orphan; the interrupt check notices the new parent and ends the run.
   */
  parentPid?: number;
  /** Passes output on while the run goes; the caller ends it. */
  tap?: OutputTap;
  /** Writes the guest's output as it comes (`propeller wasm run`, so a host-runtime child streams it). */
  echo?: (stream: "stdout" | "stderr", bytes: Uint8Array) => void;
}

export interface ExecResult {
  ok: boolean;
  result: string;
  error?: string;
  exitCode?: number;
  /** The guest's own stderr, for `wasm run` to pass through. */
  stderr?: string;
  /** The module ran as a WASI command: `result` is its stdout (else the export's return value). */
  command?: boolean;
}

export function execute(req: ExecRequest): ExecResult {
  return req.runnable.kind === "core" ? executeCore(req, req.runnable) : executeComponent(req, req.runnable);
}

/** The result of a run that ended with an exit code: non-zero fails with the guest's stderr. */
export function ended(result: string, exitCode: number, errText: string, command: boolean): ExecResult {
  if (exitCode !== 0) {
    const err = errText.trim();
    const error = clipError(`exit code ${exitCode}${err ? `: ${err}` : ""}`);
    return { ok: false, result, exitCode, stderr: errText, error, command };
  }
  return { ok: true, result, exitCode, stderr: errText, command };
}

/** A run whose files were not all written back fails, saying which and why. */
export function writtenBack(r: ExecResult, refused: string[]): ExecResult {
  const why = notWrittenBack(refused);
  return why ? { ...r, ok: false, error: r.ok ? why : `${r.error}; ${why}` } : r;
}

const WASI_MODULES = new Set(["wasi_snapshot_preview1", "wasi_unstable"]);
/** The WASI calls each module imports (either module name), by module: worked out on its first run here. */
const wasiNames = new WeakMap<WebAssembly.Module, string[]>();

function wasiImportsOf(module: WebAssembly.Module): string[] {
  let names = wasiNames.get(module);
  if (!names) {
    const imported = WebAssembly.Module.imports(module).filter((i) => WASI_MODULES.has(i.module));
    names = [...new Set(imported.map((i) => i.name))];
    wasiNames.set(module, names);
  }
  return names;
}

function executeCore(req: ExecRequest, core: CompiledCore): ExecResult {
  const entry = chooseEntry(core.functions, req.name, req.options.invoke);
  if (typeof entry === "string") return { ok: false, result: "", error: entry };

  const g = guard(req);
  const { check: checkStop, stdout, stderr } = g;
  const preopens = loadPreopens(req.options.dirs).map((p) => ({
    ...p,
    dir: new PreopenDirectory(p.guest, p.loaded.tree),
  }));
  const disk = DiskBudget.ofMb(req.maxDiskMb);
  // A WASI object and its wrapped calls are made only for the calls the module imports; one that imports none (an
  // export computing on its inputs) gets none: making them was ~40 % of a small task's CPU on its worker.
  const names = wasiImportsOf(core.module);
  let wasi: WASI | undefined;
  // Without a prototype, and filled from the shim's own calls only: an import named `constructor`, `toString` or
  // `__proto__` found Object's and the guest called the host's functions (test/attack/wasi-imports.test.ts); now
  // it is missing, refused at instantiation as any unknown name is.
  const wasiImport: Record<string, (...a: unknown[]) => unknown> = Object.create(null);
  if (names.length > 0 || entry.kind === "command") {
    const env = { ...req.env, ...req.options.env };
    const argv = entry.kind === "command" ? [req.name, ...req.inputs] : [req.name];
    wasi = new WASI(
      argv,
      Object.entries(env).map(([k, v]) => `${k}=${v}`),
      [
        new OpenFile(new File([])),
        new ConsoleStdout(stdout.write),
        new ConsoleStdout(stderr.write),
        ...preopens.map((p) => p.dir),
      ],
      { debug: false },
    );
    // WASI calls are host calls: checking there too stops a guest that loops on fd_write. Calls that grow a file
    // are checked against the run's disk bound first. A name the shim lacks stays missing: instantiation refuses it.
    const shim = wasi.wasiImport as Record<string, (...a: unknown[]) => unknown>;
    const caps = capWasi(wasi, disk) as Record<string, (...a: unknown[]) => unknown>;
    // WASI's i32 parameters are unsigned (pointers, sizes, fds), but reach JavaScript as signed numbers: a pointer
    // above 2 GiB arrived negative and the call failed ("byteOffset cannot be negative"). proc_exit's code stays as
    // the guest gave it (exit(-1) reads -1).
    for (const name of names) {
      const fn = Object.hasOwn(caps, name) ? caps[name] : Object.hasOwn(shim, name) ? shim[name] : undefined;
      if (!fn) continue;
      wasiImport[name] =
        name === "proc_exit"
          ? (...a: unknown[]) => {
              checkStop();
              return fn(...a);
            }
          : (...a: unknown[]) => {
              checkStop();
              for (let i = 0; i < a.length; i++) if (typeof a[i] === "number") a[i] = (a[i] as number) >>> 0;
              return fn(...a);
            };
    }
  }
  const interrupt: Record<string, (...a: never[]) => unknown> = Object.create(null);
  interrupt[INTERRUPT_NAME] = checkStop;
  const imports: Record<string, Record<string, (...a: never[]) => unknown>> = Object.assign(Object.create(null), {
    [INTERRUPT_MODULE]: interrupt,
    wasi_snapshot_preview1: wasiImport,
    wasi_unstable: wasiImport,
  });

  let result = "";
  let exitCode = 0;
  try {
    const instance = new WebAssembly.Instance(core.module, imports);
    const exports = instance.exports as Record<string, unknown>;
    if (exports.memory instanceof WebAssembly.Memory) g.watch(exports.memory);
    if (entry.kind === "command") {
      exitCode = wasi!.start(instance as never); // a command always has its WASI
      result = stdout.text();
    } else {
      const args = parseArgs(entry.sig, entry.export, req.inputs);
      if (typeof args === "string") return { ok: false, result: "", error: args };
      // Also gives WASI imports the instance memory; without WASI, the same reactor initialisation as the shim's.
      if (wasi) wasi.initialize(instance as never);
      else (exports._initialize as (() => void) | undefined)?.();
      const fn = exports[entry.export] as (...a: unknown[]) => unknown;
      result = formatResult(entry.sig, fn(...args));
    }
  } catch (e) {
    if (e instanceof Interrupted) return { ok: false, result: stdout.text(), error: e.message };
    if (e instanceof WASIProcExit) exitCode = e.code;
    else return { ok: false, result: stdout.text(), error: errorText(e) };
    result = stdout.text();
  }
  const limit = writeBackLimit(preopens, disk.maxBytes);
  const refused = preopens.flatMap((p) => (p.readonly ? [] : savePreopen(p.loaded, p.dir.dir, limit)));
  return writtenBack(ended(result, exitCode, stderr.text(), entry.kind === "command"), refused);
}
