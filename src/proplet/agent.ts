import { connectMqtt, publishJson, REFUSED, REFUSED_RETRY_MS } from "../broker/client.ts";
import { DirectClient } from "../broker/direct.ts";
import { decode } from "../core/messages.ts";
import { moduleTooLarge } from "../core/module-size.ts";
import { RegistryServerMsg } from "../core/oci.ts";
import { topics } from "../core/topics.ts";
import { fields, tag } from "../log.ts";
import { tracing } from "../telemetry/tracing.ts";
import { ChunkAssembler } from "./chunks.ts";
import type { PropletConfig } from "./config.ts";
import { PropletLink } from "./link.ts";
import { discoveryMetadata, teeOf } from "./metadata.ts";
import { moduleCapOf } from "./module-source.ts";
import { PropletSampler } from "./monitor.ts";
import { TaskRuns } from "./runs.ts";
import { CRASHED_MID_RUN } from "./start-again.ts";

export { DEFAULT_TASK_MEMORY_MB } from "./runs.ts";

const log = tag("proplet");
/** How long a shutdown waits for the stopped runs to publish their ends (a worker is cut off after 1 s). */
const STOP_WAIT_MS = 2500;

// The proplet: announces itself, heartbeats, runs the tasks addressed to it and reports their results.
// Heartbeats run on this thread while every task runs on a pool worker, so a busy task never delays them.
// This file wires MQTT and routes messages; link.ts publishes (results, outbox, heartbeats, offline period),
// runs.ts runs tasks (module-source.ts fetches and checks their modules, task-metrics.ts samples them).

export const RUNTIME_NAME = "propeller-inprocess";

export class PropletAgent {
  private t: ReturnType<typeof topics>;
  private link: PropletLink;
  private runs: TaskRuns;
  private heartbeat?: Timer;
  private metricsTimer?: Timer;
  private chunks: ChunkAssembler;

  constructor(private cfg: PropletConfig) {
    this.t = topics(cfg);
    this.link = new PropletLink(cfg, this.t);
    this.chunks = new ChunkAssembler(
      (app, chunks) => {
        if (this.link.client)
          void publishJson(this.link.client, this.t.registryRequest, {
            app_name: app,
            ...(chunks ? { chunks } : {}),
            proplet_id: this.id,
          }).catch(() => {});
      },
      (m) => log.warn(m),
      (bytes) => {
        const cap = moduleCapOf(this.cfg);
        return moduleTooLarge(bytes, cap.mb, cap.setting);
      },
    );
    this.runs = new TaskRuns(cfg, this.link, this.chunks);
  }

  get id(): string {
    return this.cfg.entityId;
  }

  /** `fn` is called each time a run here ends. */
  onTaskEnded(fn: () => void): void {
    this.runs.onEnded = fn;
  }

  async start(): Promise<void> {
    void teeOf(this.cfg); // while the broker connection is made
    const offline = { proplet_id: this.id, status: "offline", namespace: this.cfg.namespace };
    // A standalone proplet waits for its broker as long as it takes, saying so; serve's local one cannot miss.
    // Refused credentials are not a broker that is away: that is said instead (the refusal itself is above it).
    let refused = false;
    const waiting = this.cfg.broker
      ? undefined
      : setTimeout(
          () =>
            log.warn(
              refused
                ? `the MQTT broker at ${this.cfg.mqttAddress} refuses this proplet's credentials (see above); trying again every ${REFUSED_RETRY_MS / 1000} s. A new identity: \`propeller proplets join-token\` on the site, then \`propeller proplet --join URL --token TOKEN\``
                : `waiting for the MQTT broker at ${this.cfg.mqttAddress}…`,
            ),
          3000,
        );
    // serve's local proplet talks to the broker in its process directly (broker/direct.ts); one on a network
    // connects over MQTT with its identity and its Last Will.
    this.link.client = this.cfg.broker
      ? new DirectClient(this.cfg.broker)
      : await connectMqtt(
          this.cfg.mqttAddress,
          {
            clientId: this.id,
            username: this.id,
            password: this.cfg.apiKey,
            will: { topic: this.t.alive, payload: JSON.stringify(offline) },
            tls: this.cfg.tls,
            keepalive: this.cfg.keepalive,
            // The broker keeps our session while the link is down: a stop sent meanwhile arrives after.
            persistentSession: true,
            onClient: (c) => c.on("error", (e) => (refused ||= REFUSED.test(e.message))),
          },
          0,
        );
    clearTimeout(waiting);
    const client = this.link.client;
    client.on("offline", () => {
      this.link.wentOffline();
      log.warn(`lost the MQTT broker at ${this.cfg.mqttAddress}; reconnecting (tasks go on, results are kept)`);
    });
    client.on("message", (topic, payload) => {
      if (topic === this.t.start) void this.runs.onStart(payload);
      else if (topic === this.t.stop) this.runs.onStop(payload);
      else if (topic === this.t.registryChunks) this.onChunk(payload);
      else if (topic === this.t.invoke) void this.runs.onInvoke(payload);
    });
    // On every (re)connect: first what waited for the link (results before the heartbeat that no longer lists their
    // tasks), then announce, so a restarted manager learns about us without waiting for a heartbeat.
    client.on("connect", () => void this.link.flush().then(() => this.announce()));
    this.reportInterrupted();
    await this.link.flush();
    await this.announce();
    this.heartbeat = setInterval(() => this.beat(), this.cfg.livelinessInterval * 1000);
    const every = this.cfg.metricsInterval ?? 10;
    if (every > 0) {
      const sampler = new PropletSampler(this.id, this.cfg.namespace, this.cfg.cgroupRoot ?? "/sys/fs/cgroup");
      const send = () => {
        if (client.connected) client.publish(this.t.metrics, JSON.stringify(sampler.sample()), { qos: 0 });
      };
      send();
      this.metricsTimer = setInterval(send, every * 1000);
    }
    if (this.cfg.metricsPort) {
      // Loaded only when asked for: prom-client is a good part of an idle proplet's memory.
      const { PropletPrometheus } = await import("./prometheus.ts");
      this.runs.prom = new PropletPrometheus(() => this.runs.size);
      const port = this.runs.prom.listen(this.cfg.metricsPort);
      log.info(`Prometheus metrics on http://127.0.0.1:${port}/metrics`);
    }
    log.info(
      `proplet ${this.id} connected to ${this.cfg.mqttAddress} (channel ${this.cfg.domainId}/${this.cfg.channelId})`,
    );
  }

  /** Runs this proplet was killed in the middle of end failed now, through the outbox (run-record.ts). */
  private reportInterrupted(): void {
    for (const [run, task] of this.link.record.interrupted()) {
      log.warn(`task ${task}: ${CRASHED_MID_RUN}`, fields({ task_id: task, run_id: run, proplet_id: this.id }));
      // publishResult marks it finished in the record before the outbox takes it.
      void this.link.publishResult({
        task_id: task,
        proplet_id: this.id,
        run_id: run,
        results: "",
        error: CRASHED_MID_RUN,
      });
    }
  }

  private async announce(): Promise<void> {
    const c = this.link.client!;
    await c.subscribeAsync([this.t.start, this.t.stop, this.t.invoke, this.t.registryChunks], { qos: this.link.qos });
    await publishJson(c, this.t.create, {
      proplet_id: this.id,
      namespace: this.cfg.namespace,
      metadata: {
        ...(await discoveryMetadata(this.cfg, this.runs.host?.name ?? RUNTIME_NAME)),
        max_tasks: this.cfg.maxTasks,
        liveliness_interval_s: this.cfg.livelinessInterval,
        run_ids: true,
        // Its run record survives a restart: a manager may send a start again and trust the answer (start-again.ts).
        ...(this.link.record.durable ? { run_record: true } : {}),
      },
    });
    this.beat();
  }

  private beat(): void {
    this.link.beat(this.runs.listed());
  }

  private onChunk(payload: Buffer): void {
    const d = decode(RegistryServerMsg, payload);
    if (!d.ok) {
      log.warn(`dropped malformed chunk: ${d.error}`);
      return;
    }
    // An error the proxy addressed to another proplet (it asked for something it may not have) is not ours: behind a
    // broker that does not sort them out, it must not fail our own wait for that module.
    if ("error" in d.value) {
      if (!d.value.proplet_id || d.value.proplet_id === this.id) this.chunks.onError(d.value);
    } else this.chunks.onChunk(d.value);
  }

  /** Graceful: say we are offline (the Last Will only fires on an unclean end), then disconnect. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    clearInterval(this.metricsTimer);
    this.runs.prom?.close();
    // Their ends go out before the offline message (within the 5 s a shutdown is given: cli/proplet.ts).
    await this.runs.stopAll(STOP_WAIT_MS);
    const client = this.link.client;
    if (client?.connected) {
      // Sent on purpose, so it lists what still runs here (nothing: every run was just stopped): the manager
      // settles those runs at once instead of waiting out the partition grace as for a Last Will.
      await this.link.flush();
      await publishJson(client, this.t.alive, {
        proplet_id: this.id,
        status: "offline",
        namespace: this.cfg.namespace,
        tasks: [],
      }).catch(() => {});
    }
    // Without a broker there is nothing to flush: a graceful end would wait on reconnecting.
    await client?.endAsync(!client.connected);
    await tracing().flush();
    this.chunks.close();
    this.runs.close();
  }
}
