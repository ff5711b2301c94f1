import type { RuntimeOptions } from "../../core/wasm-call.ts";
import type { Signature } from "../../core/wasm-info.ts";
import type { ExecResult } from "./execute.ts";

/** Message from the pool to a worker. `stopFlag` is a SharedArrayBuffer so a stop reaches a busy worker. */
export interface WorkerRequest {
  seq: number;
  module: WebAssembly.Module;
  functions: Map<string, Signature>;
  name: string;
  inputs: string[];
  env: Record<string, string>;
  options: RuntimeOptions;
  stopFlag: SharedArrayBuffer;
  timeoutMs: number;
  outputLimit: number;
}

export type WorkerReply = ExecResult & { seq: number };
