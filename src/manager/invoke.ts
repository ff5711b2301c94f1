import { conflict, unavailable } from "../core/errors.ts";
import { INVOKE_TIMEOUT_MS, type InvokeResultMsg } from "../core/messages.ts";
import { TaskState } from "../core/states.ts";
import type { InvokeRequest, Task } from "../core/task.ts";
import { tag } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Dispatcher, ManagerBus } from "./dispatcher.ts";

const log = tag("manager");

// Latent tasks (`latent: true`): started once, the module stays compiled on its proplet; `POST /tasks/{id}/invoke`
// calls it with inputs and waits for the answer (upstream's `control/manager/invoke` and
// `control/proplet/invoke_results`). Invocations are in memory: one lost to a manager restart times out for its
// caller, nothing else depends on it.

/** Invocations waiting at once; more are refused (503) rather than queued without bound. */
export const MAX_PENDING_INVOCATIONS = 10_000;
const NOT_DEPLOYED = "has not been precompiled";

interface Pending {
  taskId: string;
  resolve(r: InvokeResultMsg): void;
  reject(e: Error): void;
  timer: Timer;
}

export class Invocations {
  private pending = new Map<string, Pending>();

  constructor(
    private store: Storage,
    private dispatcher: Dispatcher,
    private bus: ManagerBus,
    private timeoutMs = INVOKE_TIMEOUT_MS,
  ) {}

  /** Calls a deployed latent task once; a proplet that lost the deployment gets it again and the call is retried. */
  async invoke(id: string, req: InvokeRequest): Promise<{ invoked: true; results: string }> {
    const task = this.store.tasks.get(id);
    if (!task) throw conflict(`task ${id} not found`);
    if (!task.latent) throw conflict(`task ${id} is not a latent task and cannot be invoked`);
    if (task.state !== TaskState.Running || !task.proplet_id) {
      throw conflict(
        `task ${id} is not deployed (${task.state === TaskState.Scheduled ? "waiting for a proplet" : "start it first"})`,
      );
    }
    let r = await this.once(task, req);
    if (r.error?.includes(NOT_DEPLOYED)) {
      log.info(`task ${id}: proplet ${task.proplet_id} lost the deployment; deploying it again`);
      await this.dispatcher.redeploy(task);
      r = await this.once(task, req);
    }
    if (r.error) throw conflict(r.error);
    return { invoked: true, results: r.results };
  }

  private once(task: Task, req: InvokeRequest): Promise<InvokeResultMsg> {
    if (this.pending.size >= MAX_PENDING_INVOCATIONS) {
      throw unavailable(`${MAX_PENDING_INVOCATIONS} invocations are already waiting: try again shortly`);
    }
    const invocationId = crypto.randomUUID();
    const answer = new Promise<InvokeResultMsg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(invocationId);
        reject(unavailable(`invocation of task ${task.id} timed out after ${this.timeoutMs / 1000}s`));
      }, this.timeoutMs);
      this.pending.set(invocationId, { taskId: task.id, resolve, reject, timer });
    });
    const msg = {
      id: task.id,
      broadcast: false,
      proplet_id: task.proplet_id,
      invocation_id: invocationId,
      inputs: req.inputs ?? [],
      ...(req.env && Object.keys(req.env).length ? { env: req.env } : {}),
    };
    this.bus.invoke(msg).catch((e) => {
      const p = this.pending.get(invocationId);
      if (!p) return;
      clearTimeout(p.timer);
      this.pending.delete(invocationId);
      p.reject(unavailable(`invocation of task ${task.id} not sent: ${e instanceof Error ? e.message : e}`));
    });
    return answer;
  }

  /** An answer: only for an invocation waiting, and only about the task it was for. */
  onResult(m: InvokeResultMsg): void {
    const p = this.pending.get(m.invocation_id);
    if (!p || p.taskId !== m.task_id) return;
    const task = this.store.tasks.get(p.taskId);
    if (m.proplet_id && task?.proplet_id && m.proplet_id !== task.proplet_id) return;
    clearTimeout(p.timer);
    this.pending.delete(m.invocation_id);
    p.resolve(m);
  }

  /** Shutdown: every waiting caller is told at once. */
  close(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(unavailable("the manager is shutting down"));
      this.pending.delete(id);
    }
  }
}
