// Pool worker: runs one task at a time on its own thread, so a busy task never delays the proplet's heartbeats.
import { execute, type ExecResult } from "./execute.ts";
import { MAX_MODULES, type WorkerRequest } from "./protocol.ts";

declare const self: Worker;

type Compiled = NonNullable<WorkerRequest["compiled"]>;
const modules = new Map<string, Compiled>();


self.onmessage = (e: MessageEvent<WorkerRequest>) => {
  const req = e.data;
  let res: ExecResult;
  try {
    if (req.compiled) {
      modules.set(req.sha256, req.compiled);
      if (modules.size > MAX_MODULES) modules.delete(modules.keys().next().value!);
    }
    const compiled = modules.get(req.sha256);
    if (!compiled) throw new Error(`module ${req.sha256} was not sent to this worker`);
    res = execute({ ...req, ...compiled, stopFlag: new Int32Array(req.stopFlag) });
  } catch (err) {
    res = { ok: false, result: "", error: err instanceof Error ? err.message : String(err) };
  }
  self.postMessage({ seq: req.seq, ...res });
};
