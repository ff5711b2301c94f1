import type { ExecResult } from "./execute.ts";
import { STOPPED } from "./guard.ts";
import type { Compiled, Runnable } from "./modules.ts";
import type { OutputSink } from "./output.ts";
import {
  MAX_MODULES,
  OUTPUT_LIMIT,
  type RunRequest,
  type WorkerInit,
  type WorkerOutput,
  type WorkerReply,
  type WorkerRequest,
} from "./protocol.ts";

// A warm pool of worker threads, one task per worker at a time. A stop sets the worker's shared flag, which the
// injected interrupt check reads; if the worker still has not answered after the grace period (stuck outside
// Wasm), it is terminated and replaced.

export interface RunSpec extends RunRequest {
  compiled: Compiled;
  /** Receives the output while the task runs. */
  onOutput?: OutputSink;
}

export interface Running {
  done: Promise<ExecResult>;
  stop(reason?: string): void;
  /** PID of the task's own process (host runtime). */
  pid?: number;
  /** Linear memory in bytes, as last seen by the interrupt check (in-process runtime). */
  memoryBytes?: () => number;
  /** CPU seconds of the task's worker thread, as last read by the interrupt check (in-process runtime). */
  threadCpuSeconds?: () => number;
}

const STOP_GRACE_MS = 1000;
/**
 * Workers beyond the first end after idling this long: each holds a heap of its own (measured, serve after a
 * 50,000-task burst and 30 s idle: 158.9 MiB with its 4 workers kept; idle after a burst, 8-9 MiB less with one
 * worker kept than with two, scripts/bench/idle-first.ts).
 */
export const RETIRE_IDLE_MS = 10_000;
/**
 * Workers that stay however long they idle: the first task after a quiet spell finds a thread with its module
 * and pays no thread start. The others of the warm count are started with the first task (a burst finds them)
 * and retire like those spawned beyond it.
 */
export const KEEP_WARM = 1;
/**
 * The kept worker retires too once it ran this many tasks since it started and idled RETIRE_IDLE_MS, with the
 * others: a burst leaves compiled code and heap in it (serve after 50,000 tasks: 5-7 MiB more given back than by
 * asking it to collect, Bun.shrink and Bun.gc in the worker). The next task starts a fresh one (a thread start,
 * once, after a burst whose code serve recompiles anyway, src/cli/idle-release.ts); after fewer runs it stays.
 */
export const RETIRE_AFTER_RUNS = 1000;

interface Slot {
  worker: Worker;
  /** Modules this worker already holds (mirrors the worker's own bounded map). */
  known: Set<string>;
  flag: Int32Array;
  /** When it last became idle (performance.now()). */
  idleSince: number;
  /** Runs since it was started. */
  runs: number;
  pending?: (r: WorkerReply) => void;
  output?: (o: WorkerOutput) => void;
}

// In the compiled executable every bundled module reports the entry's URL (/$bunfs/root/propeller), and the
// worker entrypoint sits at its source path relative to src/: resolve it from there.
const workerUrl = import.meta.url.includes("/$bunfs/")
  ? new URL("./proplet/runtime/worker.ts", import.meta.url).href
  : new URL("./worker.ts", import.meta.url).href;

export class WorkerPool {
  private idle: Slot[] = [];
  private busy = new Set<Slot>();
  private seq = 0;
  private closed = false;
  /** Runs waiting for a worker: more tasks than `max` queue here instead of spawning without bound. */
  private queue: (() => void)[] = [];

  /** Workers are started with the first task, not with the proplet: an idle proplet holds no thread's memory. */
  private started = false;
  /** Idle workers that never retire (KEEP_WARM, or none when the pool is not warmed at all). */
  private keep: number;

  constructor(
    private warm: number,
    private max = Math.max(4, warm * 2),
    private retireIdleMs = RETIRE_IDLE_MS,
    private retireAfterRuns = RETIRE_AFTER_RUNS,
  ) {
    this.keep = Math.min(KEEP_WARM, warm);
  }

  /** Worker threads alive now, idle or busy. */
  get workers(): number {
    return this.idle.length + this.busy.size;
  }

  private warmUp(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.warm; i++) this.idle.push(this.spawn());
    if (this.idle.length > this.keep) this.retireLater(); // a warm worker no task ever took retires too
  }

  private spawn(): Slot {
    const sab = new SharedArrayBuffer(12);
    const slot: Slot = {
      worker: new Worker(workerUrl),
      known: new Set(),
      flag: new Int32Array(sab),
      idleSince: performance.now(),
      runs: 0,
    };
    slot.worker.postMessage({ stopFlag: sab } satisfies WorkerInit);
    slot.worker.onmessage = (e: MessageEvent<WorkerReply | WorkerOutput>) => {
      if ("output" in e.data) slot.output?.(e.data);
      else slot.pending?.(e.data);
    };
    // A worker that dies while busy fails its task; one that dies idle is dropped so no task is sent to it.
    slot.worker.onerror = (e) => {
      if (slot.pending) slot.pending({ seq: -1, ok: false, result: "", error: `worker crashed: ${e.message}` });
      else this.idle = this.idle.filter((x) => x !== slot);
    };
    // Workers never keep a process alive (idle ones must not on shutdown): a proplet is kept alive by its broker
    // connection and timers. Ref'ing a worker for each task and unref'ing it after doubled what posting a task
    // costs (measured 15 µs against 7).
    slot.worker.unref();
    return slot;
  }

  private release(slot: Slot, healthy: boolean): void {
    this.busy.delete(slot);
    slot.pending = undefined;
    slot.output = undefined;
    queueMicrotask(() => this.queue.shift()?.());
    if (!healthy || this.closed) {
      slot.worker.terminate();
      if (!this.closed && this.idle.length < this.keep) this.idle.push(this.spawn());
      return;
    }
    // Healthy workers stay (at most `max` exist): respawning would cost a thread start and re-sending modules.
    // Those beyond the first go once they have idled a while.
    slot.idleSince = performance.now();
    this.idle.push(slot);
    slot.runs++;
    if (this.idle.length > this.keep || slot.runs >= this.retireAfterRuns) this.retireLater();
  }

  private retireTimer?: Timer;

  /**
   * Ends idle workers beyond the kept ones that have idled retireIdleMs, and a kept one that ran retireAfterRuns
   * tasks and idled as long; looks again when the oldest of the rest will have (not a full retireIdleMs later,
   * which let a worker idle up to twice as long).
   */
  private retireLater(delay = this.retireIdleMs): void {
    if (this.retireTimer) return;
    this.retireTimer = setTimeout(() => {
      this.retireTimer = undefined;
      const now = performance.now();
      // The most recently used stay (tasks take from the end): the oldest idle ones are at the front.
      const due = (s: Slot, i: number) => i < this.idle.length - this.keep || s.runs >= this.retireAfterRuns;
      const stay: Slot[] = [];
      let next = Number.POSITIVE_INFINITY;
      this.idle.forEach((s, i) => {
        if (!due(s, i)) stay.push(s);
        else if (now - s.idleSince >= this.retireIdleMs) s.worker.terminate();
        else {
          stay.push(s);
          next = Math.min(next, s.idleSince);
        }
      });
      this.idle = stay;
      if (next < Number.POSITIVE_INFINITY) this.retireLater(Math.max(1, this.retireIdleMs - (now - next)));
    }, delay);
    this.retireTimer.unref();
  }

  run(spec: RunSpec): Running {
    this.warmUp();
    if (this.closed) throw new Error("runtime is shut down");
    if (this.busy.size < this.max) return this.dispatch(spec);
    // Queued: stop before dispatch just drops it from the queue.
    let inner: Running | undefined;
    let cancelled: string | undefined;
    let resolveOuter!: (r: ExecResult) => void;
    const done = new Promise<ExecResult>((r) => (resolveOuter = r));
    const go = () => {
      if (cancelled !== undefined) return resolveOuter({ ok: false, result: "", error: cancelled });
      inner = this.dispatch(spec);
      void inner.done.then(resolveOuter);
    };
    this.queue.push(go);
    return {
      done,
      stop: (reason = STOPPED) => {
        if (inner) return inner.stop(reason);
        cancelled = reason;
        this.queue = this.queue.filter((q) => q !== go);
        resolveOuter({ ok: false, result: "", error: reason });
      },
      memoryBytes: () => inner?.memoryBytes?.() ?? 0,
      threadCpuSeconds: () => inner?.threadCpuSeconds?.() ?? 0,
    };
  }

  private dispatch(spec: RunSpec): Running {
    const slot = this.idle.pop() ?? this.spawn();
    this.busy.add(slot);
    Atomics.store(slot.flag, 0, 0);
    Atomics.store(slot.flag, 1, 0);
    Atomics.store(slot.flag, 2, 0);
    const seq = ++this.seq;
    let settle!: (r: ExecResult) => void;
    const done = new Promise<ExecResult>((resolve) => (settle = resolve));
    let finished = false;
    let killTimer: Timer | undefined;
    let timeoutTimer: Timer | undefined;
    const finish = (r: ExecResult, healthy: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(killTimer);
      clearTimeout(timeoutTimer);
      this.release(slot, healthy);
      settle(r);
    };
    const onOutput = spec.onOutput;
    if (onOutput) slot.output = (o) => o.seq === seq && onOutput(o.output.stream, o.output.data);
    // Why it was stopped: the guest unwinds on the stop flag saying only "task stopped" (guard.ts).
    let stoppedFor: string | undefined;
    slot.pending = (r) => {
      if (r.seq === seq) finish(stoppedFor && !r.ok && r.error === STOPPED ? { ...r, error: stoppedFor } : r, true);
      else if (r.seq === -1) finish(r, false);
    };
    const stop = (reason = STOPPED) => {
      if (finished) return;
      stoppedFor ??= reason;
      Atomics.store(slot.flag, 0, 1);
      killTimer ??= setTimeout(
        () => finish({ ok: false, result: "", error: `${reason} (worker terminated)` }, false),
        STOP_GRACE_MS,
      );
    };
    const timeoutMs = spec.timeoutMs ?? 0;
    if (timeoutMs > 0) {
      // The guest sees the deadline through the interrupt check; this timer is the backstop.
      timeoutTimer = setTimeout(() => stop(`task timed out after ${timeoutMs / 1000}s`), timeoutMs + STOP_GRACE_MS);
    }
    const key = spec.compiled.key;
    const send = !slot.known.has(key);
    if (send) {
      slot.known.add(key);
      // Same bound and order as the worker's map, so "known" never claims a module the worker dropped.
      if (slot.known.size > MAX_MODULES) slot.known.delete(slot.known.values().next().value!);
    }
    const req: WorkerRequest = {
      seq,
      key,
      ...(send ? { compiled: withoutKey(spec.compiled) } : {}),
      name: spec.name,
      inputs: spec.inputs,
      env: spec.env,
      options: spec.options,
      timeoutMs,
      ...(spec.maxDiskMb ? { maxDiskMb: spec.maxDiskMb } : {}),
      outputLimit: OUTPUT_LIMIT,
      ...(onOutput ? { stream: true } : {}),
    };
    slot.worker.postMessage(req);
    // Ticks are counted from the thread's start: the first reading of a run is its baseline.
    let base: number | undefined;
    const threadCpuSeconds = () => {
      const t = Atomics.load(slot.flag, 2);
      if (t === 0) return 0;
      base ??= t;
      return (t - base) / 100;
    };
    return { done, stop, memoryBytes: () => Atomics.load(slot.flag, 1) * 65536, threadCpuSeconds };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retireTimer);
    for (const s of this.idle) s.worker.terminate();
    this.idle = [];
    for (const s of this.busy) s.worker.terminate();
  }
}

/** The compiled module as a worker takes it (its cache key goes beside it), made only when it is sent. */
function withoutKey(compiled: RunSpec["compiled"]): Runnable {
  const { key: _key, ...runnable } = compiled;
  return runnable as Runnable;
}
