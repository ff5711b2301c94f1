// jco on its own thread (component.ts): transpiling does not hold up the proplet's heartbeats, and jco's own
// instances (~70 MiB of linear memory) go away with the thread when no component has come for a while.
import { $init, generate } from "@bytecodealliance/jco-transpile/component";
import { componentWit } from "@bytecodealliance/jco-transpile/wasm-tools";

declare const self: Worker;

export interface TranspileRequest {
  id: number;
  bytes: Uint8Array;
}

export type TranspileReply =
  | { id: number; ok: true; wit: string; imports: string[]; files: [string, Uint8Array][] }
  | { id: number; ok: false; error: string };

self.onmessage = async (e: MessageEvent<TranspileRequest>) => {
  const { id, bytes } = e.data;
  let reply: TranspileReply;
  try {
    await $init;
    const wit = await componentWit(bytes);
    const out = generate(bytes, {
      name: "component",
      instantiation: { tag: "sync" },
      noTypescript: true,
      noNodejsCompat: true,
      base64Cutoff: 0, // every core module as its own file: each is instrumented before it is compiled
      map: [],
    });
    reply = { id, ok: true, wit, imports: out.imports, files: out.files };
  } catch (err) {
    reply = { id, ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage(reply);
};
