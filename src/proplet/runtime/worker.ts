// Pool worker: runs one task at a time on its own thread, so a busy task never delays the proplet's heartbeats.
import { type ExecResult, execute } from "./execute.ts";
import type { Runnable } from "./modules.ts";
import { OutputTap } from "./output.ts";
import { MAX_MODULES, type WorkerInit, type WorkerOutput, type WorkerRequest } from "./protocol.ts";
import { batchThisThread } from "./sched.ts";

declare const self: Worker;

// Its wake-up must not take the CPU from the thread that handed it a task (sched.ts).
batchThisThread();

const modules = new Map<string, Runnable>();

let stopFlag: Int32Array | undefined;

self.onmessage = (e: MessageEvent<WorkerRequest | WorkerInit>) => {
  if ("stopFlag" in e.data) {
    stopFlag = new Int32Array(e.data.stopFlag);
    return;
  }
  const req = e.data;
  let res: ExecResult;
  const tap = req.stream
    ? new OutputTap(
        (stream, data) => self.postMessage({ seq: req.seq, output: { stream, data } } satisfies WorkerOutput),
        req.outputLimit,
      )
    : undefined;
  try {
    if (req.compiled) {
      modules.set(req.key, req.compiled);
      if (modules.size > MAX_MODULES) modules.delete(modules.keys().next().value!);
    }
    const runnable = modules.get(req.key);
    if (!runnable) throw new Error(`module ${req.key} was not sent to this worker`);
    if (!stopFlag) throw new Error("worker was not initialised with a stop flag");
    res = execute({ ...req, runnable, stopFlag, tap });
  } catch (err) {
    res = { ok: false, result: "", error: err instanceof Error ? err.message : String(err) };
  }
  tap?.end(); // before the reply, so the reader has every line when the task ends
  self.postMessage({ seq: req.seq, ...res });
};
