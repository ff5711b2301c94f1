// The compile thread (compiler.ts): instruments and compiles one module at a time, off the proplet's thread.
import { type CoreCompiled, compileCoreHere, compileModulesHere } from "./compiler.ts";

declare const self: Worker;

/** A job, without the id the client numbers it with. */
export type CompileJob =
  | { kind: "core"; bytes: Uint8Array; pages?: number }
  | { kind: "modules"; files: [string, Uint8Array][]; pages?: number };

export type CompileRequest = CompileJob & { id: number };

export type CompileReply =
  | { id: number; ok: true; core?: CoreCompiled; modules?: Map<string, WebAssembly.Module> }
  | { id: number; ok: false; error: string };

self.onmessage = (e: MessageEvent<CompileRequest>) => {
  const req = e.data;
  let reply: CompileReply;
  try {
    reply =
      req.kind === "core"
        ? { id: req.id, ok: true, core: compileCoreHere(req.bytes, req.pages) }
        : { id: req.id, ok: true, modules: compileModulesHere(req.files, req.pages) };
  } catch (err) {
    reply = { id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply);
};
