import type { RuntimeOptions } from "../../core/wasm-call.ts";
import type { Signature } from "../../core/wasm-info.ts";
import type { ExecResult } from "./execute.ts";

/** Modules a worker keeps; the pool mirrors the same bound to know what a worker holds. */
export const MAX_MODULES = 64;

/** First message to a new worker: its stop flag, a SharedArrayBuffer so a stop reaches it while it is busy. */
export interface WorkerInit {
  stopFlag: SharedArrayBuffer;
}

/** A task for a worker. */
export interface WorkerRequest {
  seq: number;
  sha256: string;
  /** Sent only the first time this worker sees the module: cloning it on every run costs the main thread. */
  compiled?: { module: WebAssembly.Module; functions: Map<string, Signature> };
  name: string;
  inputs: string[];
  env: Record<string, string>;
  options: RuntimeOptions;
  timeoutMs: number;
  outputLimit: number;
}

export type WorkerReply = ExecResult & { seq: number };
