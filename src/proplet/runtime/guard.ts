import { readFileSync } from "node:fs";
import { cpuTicks, statFields } from "../../core/procstat.ts";
import { ByteBuffer } from "./byte-buffer.ts";
import type { ExecRequest } from "./execute.ts";

// What every run on the in-process runtime shares, core module or component: the interrupt check the instrumented
// code calls (stop flag, deadline, a vanished parent, metrics for the owner) and the bounded capture of output.

/** What a guest unwound by the stop flag ends with; the pool (pool.ts) puts the stop's own reason in its place. */
export const STOPPED = "task stopped";

export class Interrupted extends Error {}

export class Capture {
  private out: ByteBuffer;
  truncated = false;
  constructor(
    limit: number,
    private tap?: (b: Uint8Array) => void,
  ) {
    this.out = new ByteBuffer(limit);
  }
  write = (b: Uint8Array) => {
    if (b.length === 0) return; // nothing to keep or pass on
    this.tap?.(b);
    if (this.out.append(b) < b.length) this.truncated = true;
  };
  text(): string {
    return new TextDecoder().decode(this.out.bytes()) + (this.truncated ? "\n[output truncated]" : "");
  }
}

/** user + system clock ticks of the calling thread (Linux), 0 where /proc/thread-self is not there. */
function threadCpuTicks(): number {
  try {
    return cpuTicks(statFields(readFileSync("/proc/thread-self/stat", "utf8")));
  } catch {
    return 0;
  }
}

export interface Guard {
  /** The interrupt check: throws `Interrupted` to unwind the guest. */
  check: () => void;
  /** The guest's linear memory, once known, for the memory metric. */
  watch(memory: WebAssembly.Memory): void;
  stdout: Capture;
  stderr: Capture;
}

export function guard(req: ExecRequest): Guard {
  const timeoutMs = req.timeoutMs ?? 0;
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : 0;
  let memory: WebAssembly.Memory | undefined;
  let cpuReadAt = 0;
  const check = () => {
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
    if (Atomics.load(req.stopFlag, 0) !== 0) throw new Interrupted(STOPPED);
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
  return {
    check,
    watch: (m) => {
      memory ??= m;
    },
    stdout: new Capture(req.outputLimit, pass("stdout")),
    stderr: new Capture(req.outputLimit, pass("stderr")),
  };
}

/** A trap or host error as a task's error text. */
export function errorText(e: unknown): string {
  return e instanceof WebAssembly.RuntimeError ? `wasm trap: ${e.message}` : e instanceof Error ? e.message : String(e);
}
