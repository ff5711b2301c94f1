import type { RuntimeOptions } from "../../core/wasm-call.ts";
import type { Signature } from "../../core/wasm-info.ts";
import type { ExecResult } from "./execute.ts";

/** Modules a worker keeps; the pool mirrors the same bound to know what a worker holds. */
export const MAX_MODULES = 64;

/** Message from the pool to a worker. `stopFlag` is a SharedArrayBuffer so a stop reaches a busy worker. */
export interface WorkerRequest {
  seq: number;
  sha256: string;
  /** Sent only the first time this worker sees the module: cloning it on every run costs the main thread. */
  compiled?: { module: WebAssembly.Module; functions: Map<string, Signature> };
  name: string;
  inputs: string[];
  env: Record<string, string>;
  options: RuntimeOptions;
  stopFlag: SharedArrayBuffer;
  timeoutMs: number;
  outputLimit: number;
}

export type WorkerReply = ExecResult & { seq: number };
