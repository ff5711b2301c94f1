import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { publishJson, publishRaw } from "../broker/client.ts";
import type { BusClient } from "../broker/direct.ts";
import type { OutputMsg, ResultMsg } from "../core/messages.ts";
import type { topics } from "../core/topics.ts";
import { tag } from "../log.ts";
import type { PropletConfig } from "./config.ts";
import { Outbox, type OutboxEntry } from "./outbox.ts";
import { RunRecord } from "./run-record.ts";
import type { OutputSink } from "./runtime/output.ts";

const log = tag("proplet");

// The proplet's link to the manager: what it publishes (results, output, task metrics, heartbeats), the outbox
// that keeps results while the link is down, and the offline period a heartbeat reports once it is back.

/** A run as a heartbeat lists it: its task and its run id ("" from a manager that sends none). */
export interface ListedRun {
  task: string;
  run: string;
}

export class PropletLink {
  client?: BusClient;
  /** QoS 0 in the broker's own process (the link cannot drop; sessions are clean); 1 over a network. */
  readonly qos: 0 | 1;
  /** Results and task metrics waiting for the link (standalone proplets; serve's local one has no link to lose). */
  private outbox?: Outbox;
  /** The runs received and finished here recently (run-record.ts): on disk with a state dir, else in memory. */
  readonly record: RunRecord;
  /** When the link went down, until the first heartbeat after it is back says so (kept in the state dir). */
  private offlineSince?: string;

  constructor(
    private cfg: PropletConfig,
    readonly t: ReturnType<typeof topics>,
  ) {
    this.qos = cfg.broker ? 0 : 1;
    this.record = new RunRecord(cfg.stateDir && join(cfg.stateDir, "runs"), undefined, (m) => log.warn(m));
    if (cfg.stateDir) {
      this.outbox = new Outbox(join(cfg.stateDir, "outbox"), undefined, (m) => log.warn(m), this.record);
      if (this.outbox.size) log.info(`${this.outbox.size} message(s) from before a restart wait for the manager`);
      try {
        this.offlineSince = JSON.parse(readFileSync(this.offlineFile!, "utf8")).from;
      } catch {}
    }
  }

  private get id(): string {
    return this.cfg.entityId;
  }

  private get offlineFile(): string | undefined {
    return this.cfg.stateDir && join(this.cfg.stateDir, "offline.json");
  }

  /** The link is down: remembered (on disk too) until a heartbeat after it is back reports the period. */
  wentOffline(): void {
    if (this.offlineSince) return;
    this.offlineSince = new Date().toISOString();
    if (this.offlineFile) writeFileSync(this.offlineFile, JSON.stringify({ from: this.offlineSince }));
  }

  /** Sends what waited for the link, oldest first; stops quietly if the link goes again. */
  flush(): Promise<void> {
    const c = this.client;
    if (!this.outbox || !c?.connected) return Promise.resolve();
    return this.outbox
      .drain((e: OutboxEntry) => publishRaw(c, e.topic, e.payload, 1))
      .catch((e) => log.debug(`outbox: ${e instanceof Error ? e.message : e}; the rest waits for the link`));
  }

  /** A heartbeat listing the runs here (`running`) and those whose results wait in the outbox. */
  beat(running: Iterable<ListedRun>): void {
    if (!this.client?.connected) return;
    // The running task ids let the manager settle runs this proplet lost (after a restart, say).
    const listed = [...running, ...(this.outbox?.pendingResults() ?? [])];
    const alive = {
      proplet_id: this.id,
      status: "alive",
      namespace: this.cfg.namespace,
      // Also the runs whose results are not delivered yet (after an outage they go first, but a heartbeat may
      // overtake them): listed, the manager keeps those runs instead of settling them as no longer running.
      tasks: listed.map((r) => r.task),
      runs: listed.map((r) => r.run),
      ...(this.offlineSince ? { offline_from: this.offlineSince, offline_to: new Date().toISOString() } : {}),
    };
    this.client.publish(this.t.alive, JSON.stringify(alive), { qos: 0 });
    if (this.offlineSince) {
      log.info(`back on the MQTT broker; the link was down since ${this.offlineSince}`);
      this.offlineSince = undefined;
      if (this.offlineFile) rmSync(this.offlineFile, { force: true });
    }
  }

  /** Whether this run's result still waits in the outbox (it goes out with the next flush). */
  resultPending(run: string): boolean {
    return this.outbox?.hasResult(run) ?? false;
  }

  async publishResult(r: ResultMsg): Promise<void> {
    // The run record says it finished before the outbox has its result: a kill in between makes a start sent
    // again answer "finished, result no longer kept", never run it twice.
    if (r.run_id) this.record.finished(r.run_id);
    if (this.outbox) {
      // On disk before it is sent: neither a cut link nor a restart loses it.
      const entry = { topic: this.t.results, payload: JSON.stringify(r), kind: "result" as const };
      this.outbox.put({ ...entry, task: r.task_id, run: r.run_id ?? "" });
      return this.flush();
    }
    try {
      await publishJson(this.client!, this.t.results, r, this.qos);
    } catch (e) {
      log.error(`task ${r.task_id}: could not publish result: ${e instanceof Error ? e.message : e}`);
    }
  }

  /** Whether task metrics can go anywhere now: the link, or the outbox that waits for it. */
  get takesTaskMetrics(): boolean {
    return !!this.client?.connected || !!this.outbox;
  }

  /** A task-metrics sample: sent at once (QoS 0), or kept in the outbox while the link is down. */
  publishTaskMetrics(payload: string): void {
    if (this.client?.connected) this.client.publish(this.t.taskMetrics, payload, { qos: 0 });
    else this.outbox?.put({ topic: this.t.taskMetrics, payload, kind: "metrics" });
  }

  /** Publishes a running task's output in order, numbered from 0 for each run. */
  outputSender(taskId: string): OutputSink {
    let seq = 0;
    return (stream, data) => {
      if (!this.client?.connected) return;
      const msg: OutputMsg = { task_id: taskId, proplet_id: this.id, seq: seq++, stream, data };
      this.client.publish(this.t.output, JSON.stringify(msg), { qos: this.qos });
    };
  }
}
