import type { InvokeMsg, StartMsg, StopMsg } from "../../../src/core/messages.ts";
import { TaskCreate } from "../../../src/core/task.ts";
import { setLogLevel } from "../../../src/log.ts";
import type { ManagerBus } from "../../../src/manager/dispatcher.ts";
import { Identities } from "../../../src/manager/identities.ts";
import { Manager, type ManagerOptions } from "../../../src/manager/manager.ts";
import type { Storage } from "../../../src/storage/repository.ts";
import { openSqlite } from "../../../src/storage/sqlite/index.ts";
import { b64 } from "../../helpers.ts";

// The manager in-process: SQLite in memory and a bus that records what would be published, so a unit of the
// manager's logic costs no process start. Proplets are played by feeding their messages to `inbound`.

/** A ManagerBus that records every start and stop instead of publishing; `failStarts` makes publishing fail. */
export class RecordingBus implements ManagerBus {
  readonly starts: StartMsg[] = [];
  readonly stops: StopMsg[] = [];
  failStarts = false;

  async start(msg: StartMsg): Promise<void> {
    if (this.failStarts) throw new Error("broker unreachable");
    this.starts.push(msg);
  }

  async stop(msg: StopMsg): Promise<void> {
    this.stops.push(msg);
  }

  readonly invokes: InvokeMsg[] = [];
  async invoke(msg: InvokeMsg): Promise<void> {
    this.invokes.push(msg);
  }
}

export interface Harness {
  store: Storage;
  bus: RecordingBus;
  m: Manager;
  /** A proplet announces itself (and may take `maxTasks` at once). */
  proplet(id: string, maxTasks?: number): void;
  /** Creates a task from a client body (parsed as the API would). */
  create(body: Record<string, unknown>): Promise<string>;
  /** The proplet reports the result of a task it runs. */
  result(taskId: string, propletId: string, results: unknown, error?: string): void;
  /** Lets deferred deliveries and the group commit run. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

setLogLevel("error");

export function harness(opts: Partial<ManagerOptions> = {}): Harness {
  const store = openSqlite(":memory:");
  const bus = new RecordingBus();
  const m = new Manager(store, bus, new Identities(store), {
    livelinessThresholdMs: 30_000,
    scheduler: "round-robin",
    ...opts,
  });
  m.recover();
  return {
    store,
    bus,
    m,
    proplet: (id, maxTasks) => m.inbound.create({ proplet_id: id, metadata: maxTasks ? { max_tasks: maxTasks } : {} }),
    create: async (body) => (await m.tasks.create(TaskCreate.parse({ file: b64("add"), ...body }))).id,
    result: (task_id, proplet_id, results, error) => m.inbound.result({ task_id, proplet_id, results, error }),
    settle: () => new Promise((resolve) => setImmediate(() => setImmediate(resolve))),
    close: async () => {
      await m.shutdown();
      store.close();
    },
  };
}
