import type { RuntimeOptions } from "../../core/wasm-call.ts";
import type { ExecResult } from "./execute.ts";
import type { Runnable } from "./modules.ts";
import type { Stream } from "./output.ts";

/**
 * One run, as every runtime takes it: the pool, its worker, `propeller wasm run` and the host runtime each add
 * only what their transport needs (a compiled module, a sequence number, the bytes to write to a file).
 */
export interface RunRequest {
  /** The export to call (else `_start`, `main`, `run`); a command's argv[0]. */
  name: string;
  inputs: string[];
  env: Record<string, string>;
  options: RuntimeOptions;
  /** Run time limit in ms; 0 or absent: none. */
  timeoutMs?: number;
  /** Linear memory cap in MiB (compiled into the in-process module; a flag to a host runtime). */
  maxMemoryMb?: number;
  /** Bound on a run's file sizes and file growth in MiB (disk-cap.ts); absent: the default. */
  maxDiskMb?: number;
}

/** Cap on a run's captured stdout and stderr, each. */
export const OUTPUT_LIMIT = 8 << 20;

/** Modules a worker keeps; the pool mirrors the same bound to know what a worker holds. */
export const MAX_MODULES = 64;

/** First message to a new worker: its stop flag, a SharedArrayBuffer so a stop reaches it while it is busy. */
export interface WorkerInit {
  stopFlag: SharedArrayBuffer;
}

/** A task for a worker. */
export interface WorkerRequest extends RunRequest {
  seq: number;
  key: string;
  /** Sent only the first time this worker sees the module: cloning it on every run costs the main thread. */
  compiled?: Runnable;
  outputLimit: number;
  /** Post the output as it is written (`tasks logs --follow`). */
  stream?: boolean;
}

export type WorkerReply = ExecResult & { seq: number };

/** A piece of a running task's output, from the worker, before its reply. */
export interface WorkerOutput {
  seq: number;
  output: { stream: Stream; data: string };
}
