// Pool worker: runs one task at a time on its own thread, so a busy task never delays the proplet's heartbeats.
import { execute, type ExecResult } from "./execute.ts";
import type { WorkerRequest } from "./protocol.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<WorkerRequest>) => {
  const req = e.data;
  let res: ExecResult;
  try {
    res = execute({ ...req, stopFlag: new Int32Array(req.stopFlag) });
  } catch (err) {
    res = { ok: false, result: "", error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage({ seq: req.seq, ...res });
};
