import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { connectMqtt, publishJson, publishRaw } from "../broker/client.ts";
import { type BusClient, DirectClient } from "../broker/direct.ts";
import { ociDigest } from "../core/digest.ts";
import { decode, InvokeMsg, type OutputMsg, type ResultMsg, StartMsg, StopMsg } from "../core/messages.ts";
import { DEFAULT_MAX_MODULE_MB, moduleTooLarge } from "../core/module-size.ts";
import { RegistryServerMsg } from "../core/oci.ts";
import { topics } from "../core/topics.ts";
import { parseTraceparent } from "../core/traceparent.ts";
import type { TrustCheck } from "../core/trust-policy.ts";
import { envError, parseRuntimeOptions } from "../core/wasm-call.ts";
import { fields, tag } from "../log.ts";
import { SpanKind, tracing } from "../telemetry/tracing.ts";
import { ChunkAssembler } from "./chunks.ts";
import type { PropletConfig } from "./config.ts";
import { openModule } from "./decrypt.ts";
import { refusedDir } from "./dirs.ts";
import { fetchModule, type ModuleCap } from "./fetch.ts";
import { deliverUpdate, type FlContext, type FlRun, isFlTask, prepareFl } from "./fl.ts";
import { discoveryMetadata, teeOf } from "./metadata.ts";
import { aggregate, ProcSampler, PropletSampler, profileFor, type TaskSample } from "./monitor.ts";
import { Outbox, type OutboxEntry } from "./outbox.ts";
import type { PropletPrometheus } from "./prometheus.ts";
import type { ExecResult } from "./runtime/execute.ts";
import { HostRuntime } from "./runtime/host.ts";
import { ModuleCache } from "./runtime/modules.ts";
import type { OutputSink } from "./runtime/output.ts";
import { type Running, type RunSpec, WorkerPool } from "./runtime/pool.ts";

const log = tag("proplet");

// The proplet: announces itself, heartbeats, runs the tasks addressed to it and reports their results.
// Heartbeats run on this thread while every task runs on a pool worker, so a busy task never delays them.

export const RUNTIME_NAME = "propeller-inprocess";

/** A task's linear memory cap when neither the proplet (PROPLET_MAX_TASK_MEMORY_MB) nor the task sets one. */
export const DEFAULT_TASK_MEMORY_MB = 1024;

/** A run on this proplet: its task, its run id ("" from a manager that sends none), and the run once started. */
interface RunHere {
  task: string;
  run: string;
  running: Running | "preparing";
}

export class PropletAgent {
  private client?: BusClient;
  private t: ReturnType<typeof topics>;
  /**
   * What runs here, by run: the run id (or, from a manager that sends none, the task id), with its task, its run
   * id ("" then) and the run itself once it started. Two runs of one task may run at once (a cron task whose
   * firings overlap under `overlap_policy: allow`).
   */
  private running = new Map<string, RunHere>();
  private stopRequested = new Set<string>();
  private heartbeat?: Timer;
  private metricsTimer?: Timer;
  private prom?: PropletPrometheus;
  private pool: WorkerPool;
  private modules = new ModuleCache();
  private chunks: ChunkAssembler;
  private host?: HostRuntime;
  /** Latent tasks deployed here, ready for invocations. */
  private deployed = new Map<string, RunSpec>();
  /**
   * Latent tasks still being fetched and compiled (on the compile thread), by task id: an invocation that comes
   * meanwhile (the manager shows the task Running as soon as it sent the start) waits for the deployment.
   */
  private deploying = new Map<string, Promise<void>>();

  /** QoS 0 in the broker's own process (the link cannot drop; sessions are clean); 1 over a network. */
  private qos: 0 | 1;
  /** Results and task metrics waiting for the link (standalone proplets; serve's local one has no link to lose). */
  private outbox?: Outbox;
  /** When the link went down, until the first heartbeat after it is back says so (kept in the state dir). */
  private offlineSince?: string;

  constructor(private cfg: PropletConfig) {
    this.t = topics(cfg);
    this.qos = cfg.broker ? 0 : 1;
    if (cfg.stateDir) {
      this.outbox = new Outbox(join(cfg.stateDir, "outbox"), undefined, (m) => log.warn(m));
      if (this.outbox.size) log.info(`${this.outbox.size} message(s) from before a restart wait for the manager`);
      try {
        this.offlineSince = JSON.parse(readFileSync(this.offlineFile!, "utf8")).from;
      } catch {}
    }
    // Warm as many workers as tasks may run at once (up to the cores); more spawn on demand up to max_tasks.
    // The host runtime needs no worker threads; the pool is then empty and never used.
    this.host = cfg.runtime === "host" ? new HostRuntime(cfg.externalRuntime, cfg.stateDir) : undefined;
    this.pool = new WorkerPool(this.host ? 0 : Math.min(cfg.maxTasks, cpus().length), cfg.maxTasks);
    this.chunks = new ChunkAssembler(
      (app, chunks) => {
        if (this.client)
          void publishJson(this.client, this.t.registryRequest, {
            app_name: app,
            ...(chunks ? { chunks } : {}),
            proplet_id: this.id,
          }).catch(() => {});
      },
      (m) => log.warn(m),
      (bytes) => moduleTooLarge(bytes, this.moduleCap.mb, this.moduleCap.setting),
    );
  }

  /** The largest module taken; a local proplet's is serve's flag. */
  private get moduleCap(): ModuleCap {
    const setting = this.cfg.broker ? "serve --max-module-mb" : "PROPLET_MAX_MODULE_MB";
    return { mb: this.cfg.maxModuleMb ?? DEFAULT_MAX_MODULE_MB, setting };
  }

  get id(): string {
    return this.cfg.entityId;
  }

  private get offlineFile(): string | undefined {
    return this.cfg.stateDir && join(this.cfg.stateDir, "offline.json");
  }

  /** The link is down: remembered (on disk too) until a heartbeat after it is back reports the period. */
  private wentOffline(): void {
    if (this.offlineSince) return;
    this.offlineSince = new Date().toISOString();
    if (this.offlineFile) writeFileSync(this.offlineFile, JSON.stringify({ from: this.offlineSince }));
  }

  /** Sends what waited for the link, oldest first; stops quietly if the link goes again. */
  private flush(): Promise<void> {
    const c = this.client;
    if (!this.outbox || !c?.connected) return Promise.resolve();
    return this.outbox
      .drain((e: OutboxEntry) => publishRaw(c, e.topic, e.payload, 1))
      .catch((e) => log.debug(`outbox: ${e instanceof Error ? e.message : e}; the rest waits for the link`));
  }

  /**
   * The gateway's FL URL, whose exact origin may be sent this proplet's key: as configured (PROPLET_FL_URL, or
   * serve's own for its local proplet), else the manager's own origin when the broker is its `/mqtt` WebSocket.
   */
  private get gatewayUrl(): string | undefined {
    const set = typeof this.cfg.flUrl === "function" ? this.cfg.flUrl() : this.cfg.flUrl;
    if (set) return set;
    try {
      const u = new URL(this.cfg.mqttAddress);
      if (u.protocol === "ws:" || u.protocol === "wss:")
        return `${u.protocol === "wss:" ? "https" : "http"}://${u.host}/fl`;
    } catch {}
    return undefined;
  }

  async start(): Promise<void> {
    void teeOf(this.cfg); // while the broker connection is made
    const offline = { proplet_id: this.id, status: "offline", namespace: this.cfg.namespace };
    // A standalone proplet waits for its broker as long as it takes, saying so; serve's local one cannot miss.
    const waiting = this.cfg.broker
      ? undefined
      : setTimeout(() => log.warn(`waiting for the MQTT broker at ${this.cfg.mqttAddress}…`), 3000);
    // serve's local proplet talks to the broker in its process directly (broker/direct.ts); one on a network
    // connects over MQTT with its identity and its Last Will.
    this.client = this.cfg.broker
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
          },
          0,
        );
    clearTimeout(waiting);
    this.client.on("offline", () => {
      this.wentOffline();
      log.warn(`lost the MQTT broker at ${this.cfg.mqttAddress}; reconnecting (tasks go on, results are kept)`);
    });
    this.client.on("message", (topic, payload) => {
      if (topic === this.t.start) void this.onStart(payload);
      else if (topic === this.t.stop) this.onStop(payload);
      else if (topic === this.t.registryChunks) this.onChunk(payload);
      else if (topic === this.t.invoke) void this.onInvoke(payload);
    });
    // On every (re)connect: first what waited for the link (results before the heartbeat that no longer lists their
    // tasks), then announce, so a restarted manager learns about us without waiting for a heartbeat.
    this.client.on("connect", () => void this.flush().then(() => this.announce()));
    await this.flush();
    await this.announce();
    this.heartbeat = setInterval(() => this.beat(), this.cfg.livelinessInterval * 1000);
    const every = this.cfg.metricsInterval ?? 10;
    if (every > 0) {
      const sampler = new PropletSampler(this.id, this.cfg.namespace, this.cfg.cgroupRoot ?? "/sys/fs/cgroup");
      const send = () => {
        if (this.client?.connected) this.client.publish(this.t.metrics, JSON.stringify(sampler.sample()), { qos: 0 });
      };
      send();
      this.metricsTimer = setInterval(send, every * 1000);
    }
    if (this.cfg.metricsPort) {
      // Loaded only when asked for: prom-client is a good part of an idle proplet's memory.
      const { PropletPrometheus } = await import("./prometheus.ts");
      this.prom = new PropletPrometheus(() => this.running.size);
      const port = this.prom.listen(this.cfg.metricsPort);
      log.info(`Prometheus metrics on http://127.0.0.1:${port}/metrics`);
    }
    log.info(
      `proplet ${this.id} connected to ${this.cfg.mqttAddress} (channel ${this.cfg.domainId}/${this.cfg.channelId})`,
    );
  }

  private async announce(): Promise<void> {
    const c = this.client!;
    await c.subscribeAsync([this.t.start, this.t.stop, this.t.invoke, this.t.registryChunks], { qos: this.qos });
    await publishJson(c, this.t.create, {
      proplet_id: this.id,
      namespace: this.cfg.namespace,
      metadata: {
        ...(await discoveryMetadata(this.cfg, this.host?.name ?? RUNTIME_NAME)),
        max_tasks: this.cfg.maxTasks,
        liveliness_interval_s: this.cfg.livelinessInterval,
        run_ids: true,
      },
    });
    this.beat();
  }

  private beat(): void {
    if (!this.client?.connected) return;
    // The running task ids let the manager settle runs this proplet lost (after a restart, say).
    const listed = [...this.running.values(), ...(this.outbox?.pendingResults() ?? [])];
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

  /** This proplet's own policy on a start's module: an image by its registry's signatures, inline by its own. */
  private ownVerdict(msg: StartMsg): Promise<TrustCheck> {
    const gate = this.cfg.trust!;
    if (msg.image_url)
      return gate.image(msg.image_url).catch((e) => ({
        allowed: false,
        scope: "default",
        rule: "none",
        digest: "",
        reason: `${msg.image_url}: cannot verify: ${e instanceof Error ? e.message : e}`,
      }));
    const sig = msg.module_signature ? new Uint8Array(Buffer.from(msg.module_signature, "base64")) : undefined;
    return gate.inline(new Uint8Array(Buffer.from(msg.file ?? "", "base64")), sig);
  }

  private async publishResult(r: ResultMsg): Promise<void> {
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

  private async onStart(payload: Buffer): Promise<void> {
    const d = decode(StartMsg, payload);
    if (!d.ok) {
      log.warn(`dropped malformed start message: ${d.error}`);
      return;
    }
    const msg = d.value;
    if (!msg.broadcast && msg.proplet_id && msg.proplet_id !== this.id) return; // addressed to another proplet
    const key = msg.run_id ?? msg.id;
    if (this.running.has(key)) {
      log.warn(`task ${msg.id}: already running here, duplicate start ignored`);
      return;
    }
    const entry: RunHere = { task: msg.id, run: msg.run_id ?? "", running: "preparing" };
    this.running.set(key, entry);
    let deployed: (() => void) | undefined;
    if (msg.latent) this.deploying.set(msg.id, new Promise<void>((resolve) => (deployed = resolve)));
    const settleDeploy = () => {
      if (!deployed) return;
      this.deploying.delete(msg.id);
      deployed();
      deployed = undefined;
    };
    const runId = msg.run_id ? { run_id: msg.run_id } : {};
    // The run joins the dispatch's trace when the manager traces and so does this proplet.
    const t = tracing();
    const span = t.enabled
      ? t.start(`run ${msg.name}`, SpanKind.consumer, parseTraceparent(msg.traceparent), {
          "propeller.task_id": msg.id,
          "propeller.proplet_id": this.id,
        })
      : undefined;
    let fl: FlRun | undefined;
    const about = fields({ task_id: msg.id, run_id: msg.run_id, proplet_id: this.id });
    const fail = (error: string) => {
      span?.end(error);
      this.running.delete(key);
      log.warn(`task failed: ${error}`, about);
      return this.publishResult({ task_id: msg.id, proplet_id: this.id, ...runId, results: "", error });
    };
    try {
      const options = parseRuntimeOptions(msg.cli_args);
      if (typeof options === "string") return await fail(options);
      const refused = refusedDir(options.dirs, this.cfg.allowedDirs ?? [], this.id);
      if (refused) return await fail(refused);
      const badEnv = envError(msg.env ?? {});
      if (badEnv) return await fail(badEnv);
      if (msg.latent && this.host) return await fail("latent tasks are not supported by the host runtime");
      const moduleCap = this.moduleCap;
      const wait = (ref: string) => this.chunks.wait(ref, this.cfg.fetchTimeoutMs ?? 60_000);
      // A proplet with its own trust policy judges the module before fetching it.
      const own = this.cfg.trust ? await this.ownVerdict(msg) : undefined;
      if (own && !own.allowed) return await fail(`refused by this proplet's trust policy: ${own.reason}`);
      const fetched = await fetchModule(msg, wait, moduleCap);
      if (own?.moduleDigest && !msg.encrypted && ociDigest(fetched) !== own.moduleDigest)
        return await fail(`refused by this proplet's trust policy: the module is not the one it approved`);
      // The manager's trust policy approved these bytes (docs/ARCHITECTURE.md, "Trusted code"): no others run.
      if (msg.module_digest && !msg.encrypted && ociDigest(fetched) !== msg.module_digest)
        return await fail(
          `refused: the module's digest ${ociDigest(fetched)} is not ${msg.module_digest}, the one the trust policy approved`,
        );
      const bytes = openModule(fetched, msg.encrypted, this.cfg.decryptionKeys);
      if (typeof bytes === "string") return await fail(bytes);
      const big = moduleTooLarge(bytes.length, moduleCap.mb, moduleCap.setting);
      if (big) return await fail(big);
      if (this.stopRequested.delete(key)) return await fail("task stopped");
      const env: Record<string, string> = { PROPLET_ID: this.id, ...msg.env };
      if (isFlTask(env)) {
        const prep = await prepareFl(env, this.flContext());
        if (typeof prep === "string") return await fail(prep);
        fl = prep;
        Object.assign(env, prep.env);
        options.dirs.push(prep.dir);
        if (this.stopRequested.delete(key)) return await fail("task stopped");
      }
      const timeoutMs = (msg.timeout_s ?? 0) * 1000;
      log.info(`task running (${msg.name})`, about);
      const cap = this.cfg.maxTaskMemoryMb ?? DEFAULT_TASK_MEMORY_MB;
      const maxMemoryMb = Math.min(msg.max_memory_mb ?? cap, cap);
      const req = {
        ...{ name: msg.name, inputs: msg.inputs ?? [], env, options, timeoutMs, maxMemoryMb },
        maxDiskMb: this.cfg.maxTaskDiskMb,
        onOutput: this.outputSender(msg.id),
      };
      let run: Running;
      if (this.host) run = this.host.run(key, { ...req, bytes });
      else {
        const spec = { ...req, compiled: await this.modules.load(bytes, maxMemoryMb) };
        // Compiling is done on its own thread, so a stop may have come meanwhile.
        if (this.stopRequested.delete(key)) return await fail("task stopped");
        run = msg.latent ? this.deploy(msg.id, spec) : this.pool.run(spec);
        settleDeploy();
      }
      entry.running = run;
      this.prom?.started.inc();
      const monitor = this.monitorTask(msg, run);
      const ran = await run.done;
      clearInterval(monitor);
      let r: { ok: boolean; results: unknown; error?: string } = { ok: ran.ok, results: ran.result, error: ran.error };
      if (fl?.round && ran.ok) {
        // An FL round's task succeeds when its update was delivered; its result is upstream's FL envelope.
        const { delivery, envelope } = await deliverUpdate(ran.result, fl, this.flContext(), (topic, body) =>
          publishRaw(this.client!, topic, body, 1),
        );
        if (delivery.ok) log.info(`task ${msg.id}: FL update for round ${fl.round} delivered (${delivery.via})`);
        r = {
          ok: delivery.ok,
          results: { task_id: msg.id, ...envelope },
          ...(delivery.ok ? {} : { error: delivery.error }),
        };
      }
      (r.ok ? this.prom?.completed : this.prom?.failed)?.inc();
      this.running.delete(key);
      if (r.ok) log.info("task completed", about);
      else log.warn(`task failed: ${r.error}`, about);
      span?.end(r.ok ? undefined : (r.error ?? "failed"));
      await this.publishResult({
        task_id: msg.id,
        proplet_id: this.id,
        ...runId,
        results: r.results,
        error: r.ok ? null : (r.error ?? "failed"),
      });
    } catch (e) {
      await fail(e instanceof Error ? e.message : String(e));
    } finally {
      fl?.cleanup();
      settleDeploy();
    }
  }

  private flContext(): FlContext {
    return { propletId: this.id, apiKey: this.cfg.apiKey, processEnv: process.env, gatewayUrl: this.gatewayUrl };
  }

  /**
   * A latent task: compiled now and kept until it is stopped; each invoke runs it on a pool worker. It is listed
   * as running (heartbeats say so) and publishes nothing until it is stopped, as upstream's.
   */
  private deploy(id: string, spec: RunSpec): Running {
    let end: (r: ExecResult) => void = () => {};
    const done = new Promise<ExecResult>((resolve) => {
      end = resolve;
    });
    this.deployed.set(id, spec);
    log.info(`task ${id} deployed (latent): ready for invocations`);
    return {
      done,
      stop: (reason = "task stopped") => {
        this.deployed.delete(id);
        end({ ok: false, result: "", error: reason });
      },
    };
  }

  private async onInvoke(payload: Buffer): Promise<void> {
    const d = decode(InvokeMsg, payload);
    if (!d.ok) {
      log.warn(`dropped malformed invoke message: ${d.error}`);
      return;
    }
    const msg = d.value;
    if (!msg.broadcast && msg.proplet_id && msg.proplet_id !== this.id) return;
    const reply = (results: string, error: string | null) =>
      publishJson(
        this.client!,
        this.t.invokeResults,
        {
          task_id: msg.id,
          invocation_id: msg.invocation_id,
          proplet_id: this.id,
          results,
          error,
        },
        this.qos,
      ).catch(() => {});
    await this.deploying.get(msg.id);
    const spec = this.deployed.get(msg.id);
    if (!spec) return reply("", `task ${msg.id} has not been precompiled; deploy it as a latent task first`);
    const r = await this.pool.run({
      ...spec,
      inputs: msg.inputs ?? [],
      env: { ...spec.env, ...(msg.env ?? {}) },
      onOutput: undefined,
    }).done;
    await reply(r.result, r.ok ? null : (r.error ?? "failed"));
  }

  /** Publishes a running task's output in order, numbered from 0 for each run. */
  private outputSender(taskId: string): OutputSink {
    let seq = 0;
    return (stream, data) => {
      if (!this.client?.connected) return;
      const msg: OutputMsg = { task_id: taskId, proplet_id: this.id, seq: seq++, stream, data };
      this.client.publish(this.t.output, JSON.stringify(msg), { qos: this.qos });
    };
  }

  /** Task metrics per monitoring profile: /proc for host-runtime tasks, linear memory for in-process ones. */
  private monitorTask(msg: StartMsg, run: Running): Timer | undefined {
    const profile = profileFor(msg.monitoring_profile, msg.daemon);
    if (!profile.enabled) return undefined;
    const proc = run.pid ? new ProcSampler(run.pid) : undefined;
    const started = performance.now();
    const history: TaskSample[] = [];
    let last = { at: started, cpu: 0 };
    // In-process: the worker thread's CPU time and the module's linear memory; nothing else is the task's own.
    const inProcess = (): TaskSample => {
      const now = performance.now();
      const cpu = run.threadCpuSeconds?.() ?? 0;
      const percent = now > last.at ? ((cpu - last.cpu) / ((now - last.at) / 1000)) * 100 : 0;
      last = { at: now, cpu };
      return {
        cpu_percent: +Math.max(0, percent).toFixed(2),
        memory_bytes: run.memoryBytes?.() ?? 0,
        memory_percent: 0,
        disk_read_bytes: 0,
        disk_write_bytes: 0,
        uptime_seconds: +((now - started) / 1000).toFixed(3),
        thread_count: 1,
        file_descriptor_count: 0,
      };
    };
    return setInterval(() => {
      const s: TaskSample | undefined = proc ? proc.sample() : inProcess();
      if (!s || (!this.client?.connected && !this.outbox)) return;
      history.push(s);
      if (history.length > profile.historySize) history.shift();
      const payload = {
        task_id: msg.id,
        proplet_id: this.id,
        ...(msg.run_id ? { run_id: msg.run_id } : {}),
        metrics: s,
        aggregated: aggregate(history),
        timestamp: new Date().toISOString(),
      };
      if (this.client?.connected) this.client.publish(this.t.taskMetrics, JSON.stringify(payload), { qos: 0 });
      else this.outbox?.put({ topic: this.t.taskMetrics, payload: JSON.stringify(payload), kind: "metrics" });
    }, profile.intervalS * 1000);
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

  private onStop(payload: Buffer): void {
    const d = decode(StopMsg, payload);
    if (!d.ok) {
      log.warn(`dropped malformed stop message: ${d.error}`);
      return;
    }
    const { id, proplet_id } = d.value;
    if (proplet_id && proplet_id !== this.id) return;
    // Every run of the task here: a stop names the task.
    const runs = [...this.running].filter(([, r]) => r.task === id);
    if (runs.length === 0) {
      if (proplet_id) log.warn(`task ${id}: stop for a task not running here`);
      return;
    }
    for (const [k, r] of runs) {
      if (r.running === "preparing") this.stopRequested.add(k);
      else r.running.stop();
    }
    log.info(`task ${id} stopping`);
  }

  /** Graceful: say we are offline (the Last Will only fires on an unclean end), then disconnect. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    clearInterval(this.metricsTimer);
    this.prom?.close();
    for (const { running } of this.running.values()) if (running !== "preparing") running.stop("proplet shutting down");
    if (this.client?.connected) {
      // Sent on purpose, so it lists what still runs here (nothing: every run was just stopped): the manager
      // settles those runs at once instead of waiting out the partition grace as for a Last Will.
      await this.flush();
      await publishJson(this.client, this.t.alive, {
        proplet_id: this.id,
        status: "offline",
        namespace: this.cfg.namespace,
        tasks: [],
      }).catch(() => {});
    }
    // Without a broker there is nothing to flush: a graceful end would wait on reconnecting.
    await this.client?.endAsync(!this.client.connected);
    await tracing().flush();
    this.chunks.close();
    this.pool.close();
  }
}
