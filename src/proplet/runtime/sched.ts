import { dlopen, FFIType, ptr } from "bun:ffi";

// A pool worker's thread runs under Linux's SCHED_BATCH policy (sched(7)): the same share of the CPU as any other
// thread at its nice value, but its wake-up does not preempt the thread that woke it. Without it, on a machine with
// few cores the event loop (the proplet's; serve's, for its local proplet) was taken off the CPU inside the
// postMessage that handed a worker its task, often for the whole of the guest's run: in the dispatch benchmark on 2
// cores, that postMessage took ~140 µs of the main thread's time for ~20 µs of its CPU (measured with the thread's
// CPU clock around it). A stop, a timeout and the worker's termination work as before: the worker still gets its
// share, and the thread that enforces them is the one that now keeps the CPU. Best effort: where the call is not
// there (no Linux, no glibc) or refused, nothing changes.

const SCHED_BATCH = 3;

/** Puts the calling thread under SCHED_BATCH; false when it could not. */
export function batchThisThread(): boolean {
  if (process.platform !== "linux") return false;
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      const lib = dlopen(name, {
        sched_setscheduler: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      });
      // struct sched_param { int sched_priority; }: 0, the only priority SCHED_BATCH has. Pid 0: this thread.
      const param = new Int32Array(1);
      const ok = lib.symbols.sched_setscheduler(0, SCHED_BATCH, ptr(param)) === 0;
      lib.close();
      return ok;
    } catch {}
  }
  return false;
}
