import { log } from "../../log.ts";
import type { CheckpointReply, CheckpointRequest } from "./checkpoint-worker.ts";

// WAL checkpoints on a thread of their own. A checkpoint copies the WAL's pages into the database and fsyncs both:
// on the main thread a 64 MiB one, or a quiet-time one after a 22 MB module was stored, held every request and
// MQTT packet for as long as the disk took (a 1.4 s /health stall on a loaded machine; test/attack/hardening.test.ts).

// In the compiled executable every bundled module reports the entry's URL; the worker sits at its source path
// relative to src/ (as the compile thread's, proplet/runtime/compiler.ts); scripts/build.ts names it an entry point.
const workerUrl = import.meta.url.includes("/$bunfs/")
  ? new URL("./storage/sqlite/checkpoint-worker.ts", import.meta.url).href
  : new URL("./checkpoint-worker.ts", import.meta.url).href;

/** The thread ends after this long without a checkpoint: an idle serve holds none of its memory. */
const IDLE_MS = 30_000;

export class Checkpointer {
  private worker?: Worker;
  private running?: Promise<CheckpointReply>;
  private runningTruncates = false;
  private idle?: Timer;
  private closed = false;

  constructor(private path: string) {}

  /** Whether a checkpoint is under way (another is not started meanwhile). */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /**
   * A checkpoint; its report, or why it failed. While one is under way no other starts: that one's report is the
   * answer, unless this one is to truncate and it is not (it follows then).
   */
  run(truncate: boolean): Promise<CheckpointReply> {
    if (this.running && (this.runningTruncates || !truncate)) return this.running;
    if (this.running) return this.running.then(() => this.run(truncate));
    if (this.closed) return Promise.resolve({ ok: false, error: "the store is closed" });
    clearTimeout(this.idle);
    const w = this.thread();
    this.runningTruncates = truncate;
    w.ref(); // a checkpoint under way keeps the process up a moment; an idle thread does not
    this.running = new Promise<CheckpointReply>((resolve) => {
      w.onmessage = (e: MessageEvent<CheckpointReply>) => resolve(e.data);
      w.onerror = (e) => {
        this.end();
        resolve({ ok: false, error: `the checkpoint thread failed: ${e.message}` });
      };
      w.postMessage({ path: this.path, truncate } satisfies CheckpointRequest);
    }).then((reply) => {
      this.running = undefined;
      this.worker?.unref();
      if (!reply.ok) log.warn(`WAL checkpoint of ${this.path} failed: ${reply.error}`);
      if (!this.closed) {
        this.idle = setTimeout(() => this.end(), IDLE_MS);
        this.idle.unref();
      }
      return reply;
    });
    return this.running;
  }

  private thread(): Worker {
    this.worker ??= new Worker(workerUrl);
    return this.worker;
  }

  private end(): void {
    clearTimeout(this.idle);
    this.worker?.terminate();
    this.worker = undefined;
  }

  /**
   * No more checkpoints. One under way finishes on its thread (it holds its own connection, closed when done); the
   * thread ends then.
   */
  close(): void {
    this.closed = true;
    if (this.running) void this.running.then(() => this.end());
    else this.end();
  }
}
