import { readFileSync } from "node:fs";
import { ConsoleStdout, File, OpenFile, PreopenDirectory, WASI, WASIProcExit } from "@bjorn3/browser_wasi_shim";
import { chooseEntry, formatResult, parseArgs } from "../../core/wasm-call.ts";
import type { Signature } from "../../core/wasm-info.ts";
import { INTERRUPT_MODULE, INTERRUPT_NAME } from "../../core/wasm-instrument.ts";
import type { OutputTap } from "./output.ts";
import { loadPreopen, MAX_PREOPEN_BYTES, savePreopen } from "./preopen.ts";
import type { RunRequest } from "./protocol.ts";

// Runs one task's module (already instrumented and compiled) to completion. Used inside a pool worker and by
// `propeller wasm run`. WASI comes from @bjorn3/browser_wasi_shim: Bun's node:wasi exits the whole host on
// proc_exit and ignores stdout capture (docs/ARCHITECTURE.md, "Measured traps").

export interface ExecRequest extends RunRequest {
  module: WebAssembly.Module;
  functions: Map<string, Signature>;
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

export class Interrupted extends Error {}

class Capture {
  private chunks: Uint8Array[] = [];
  private size = 0;
  truncated = false;
  constructor(
    private limit: number,
    private tap?: (b: Uint8Array) => void,
  ) {}
  write = (b: Uint8Array) => {
    this.tap?.(b);
    if (this.size >= this.limit) {
      this.truncated = true;
      return;
    }
    const part = b.subarray(0, this.limit - this.size);
    this.chunks.push(part.slice());
    this.size += part.length;
    if (part.length < b.length) this.truncated = true;
  };
  text(): string {
    return new TextDecoder().decode(Buffer.concat(this.chunks)) + (this.truncated ? "\n[output truncated]" : "");
  }
}

/** user + system clock ticks of the calling thread (Linux), 0 where /proc/thread-self is not there. */
function threadCpuTicks(): number {
  try {
    const stat = readFileSync("/proc/thread-self/stat", "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

export function execute(req: ExecRequest): ExecResult {
  const entry = chooseEntry(req.functions, req.name, req.options.invoke);
  if (typeof entry === "string") return { ok: false, result: "", error: entry };

  const timeoutMs = req.timeoutMs ?? 0;
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : 0;
  let memory: WebAssembly.Memory | undefined;
  let cpuReadAt = 0;
  const checkStop = () => {
    if (memory) Atomics.store(req.stopFlag, 1, memory.buffer.byteLength >>> 16); // for task metrics
    if (req.stopFlag.length > 2) {
      // The thread's own CPU time, read at most 5 times a second: the check runs every ~0.1 ms in a busy loop.
      const now = performance.now();
      if (now - cpuReadAt > 200) {
        cpuReadAt = now;
        Atomics.store(req.stopFlag, 2, threadCpuTicks());
      }
    }
    req.tap?.tick();
    if (Atomics.load(req.stopFlag, 0) !== 0) throw new Interrupted("task stopped");
    if (req.parentPid !== undefined && process.ppid !== req.parentPid)
      throw new Interrupted("the proplet that started this task is gone");
    if (deadline && Date.now() > deadline) throw new Interrupted(`task timed out after ${timeoutMs / 1000}s`);
  };
  const { tap, echo } = req;
  const pass = (s: "stdout" | "stderr") =>
    tap || echo
      ? (b: Uint8Array) => {
          echo?.(s, b);
          tap?.write(s, b);
        }
      : undefined;
  const stdout = new Capture(req.outputLimit, pass("stdout"));
  const stderr = new Capture(req.outputLimit, pass("stderr"));
  const budget = { left: MAX_PREOPEN_BYTES };
  const preopens = req.options.dirs.map((d) => {
    const loaded = loadPreopen(d.host, budget);
    return { loaded, readonly: d.readonly, dir: new PreopenDirectory(d.guest, loaded.tree) };
  });
  const env = { ...req.env, ...req.options.env };
  const argv = entry.kind === "command" ? [req.name, ...req.inputs] : [req.name];
  const wasi = new WASI(
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
  // WASI calls are host calls: checking there too stops a guest that loops on fd_write.
  const wasiImport: Record<string, (...a: unknown[]) => unknown> = {};
  for (const [k, fn] of Object.entries(wasi.wasiImport)) {
    wasiImport[k] = (...a: unknown[]) => {
      checkStop();
      return fn(...a);
    };
  }
  const imports: Record<string, Record<string, (...a: never[]) => unknown>> = {
    [INTERRUPT_MODULE]: { [INTERRUPT_NAME]: checkStop },
    wasi_snapshot_preview1: wasiImport,
    wasi_unstable: wasiImport,
  };

  let result = "";
  let exitCode = 0;
  try {
    const instance = new WebAssembly.Instance(req.module, imports);
    const exports = instance.exports as Record<string, unknown>;
    if (exports.memory instanceof WebAssembly.Memory) memory = exports.memory;
    if (entry.kind === "command") {
      exitCode = wasi.start(instance as never);
      result = stdout.text();
    } else {
      const args = parseArgs(entry.sig, entry.export, req.inputs);
      if (typeof args === "string") return { ok: false, result: "", error: args };
      wasi.initialize(instance as never); // also gives WASI imports the instance memory
      const fn = exports[entry.export] as (...a: unknown[]) => unknown;
      result = formatResult(entry.sig, fn(...args));
    }
  } catch (e) {
    if (e instanceof Interrupted) return { ok: false, result: stdout.text(), error: e.message };
    if (e instanceof WASIProcExit) exitCode = e.code;
    else {
      const msg =
        e instanceof WebAssembly.RuntimeError ? `wasm trap: ${e.message}` : e instanceof Error ? e.message : String(e);
      return { ok: false, result: stdout.text(), error: msg };
    }
    result = stdout.text();
  }
  for (const p of preopens) if (!p.readonly) savePreopen(p.loaded, p.dir.dir);
  const errText = stderr.text();
  const command = entry.kind === "command";
  if (exitCode !== 0) {
    const err = errText.trim();
    const error = `exit code ${exitCode}${err ? `: ${err}` : ""}`;
    return { ok: false, result, exitCode, stderr: errText, error, command };
  }
  return { ok: true, result, exitCode, stderr: errText, command };
}
