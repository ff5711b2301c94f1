import { cpus } from "node:os";
import { publishJson, publishRaw } from "../broker/client.ts";
import { decode, INVOKE_TIMEOUT_MS, InvokeMsg, StartMsg, StopMsg } from "../core/messages.ts";
import { plainStart } from "../core/messages-plain.ts";
import { parseTraceparent } from "../core/traceparent.ts";
import { envError, parseRuntimeOptions } from "../core/wasm-call.ts";
import { fields, tag } from "../log.ts";
import { SpanKind, tracing } from "../telemetry/tracing.ts";
import type { ChunkAssembler } from "./chunks.ts";
import type { PropletConfig } from "./config.ts";
import { refusedDir } from "./dirs.ts";
import { deliverUpdate, type FlContext, type FlRun, isFlTask, prepareFl } from "./fl.ts";
import type { ListedRun, PropletLink } from "./link.ts";
import { loadModule } from "./module-source.ts";
import type { PropletPrometheus } from "./prometheus.ts";
import type { ExecResult } from "./runtime/execute.ts";
import { STOPPED } from "./runtime/guard.ts";
import { HostRuntime } from "./runtime/host.ts";
import { ModuleCache } from "./runtime/modules.ts";
import { type Running, type RunSpec, WorkerPool } from "./runtime/pool.ts";
import { startSeenBefore } from "./start-again.ts";
import { monitorTask } from "./task-metrics.ts";

const log = tag("proplet");
/** The end of a run the proplet stopped because it is going away (SIGTERM, serve stopping). */
const SHUTTING_DOWN = "proplet shutting down";

/** A task's linear memory cap when neither the proplet (PROPLET_MAX_TASK_MEMORY_MB) nor the task sets one. */
export const DEFAULT_TASK_MEMORY_MB = 1024;

/** A run on this proplet: its task, its run id ("" from a manager that sends none), and the run once started. */
interface RunHere extends ListedRun {
  running: Running | "preparing";
}

/**
 * The runs on this proplet: a start's checks, its module (module-source.ts), its run on a pool worker (or the
 * host runtime), its result; latent tasks and their invocations; stops. Every task runs on a pool worker, so a
 * busy task never delays the agent's heartbeats.
 */
export class TaskRuns {
  /**
   * What runs here, by run: the run id (or, from a manager that sends none, the task id), with its task, its run
   * id ("" then) and the run itself once it started. Two runs of one task may run at once (a cron task whose
   * firings overlap under `overlap_policy: allow`).
   */
  private running = new Map<string, RunHere>();
  /** Runs told to stop while still preparing, with why: they end with that before anything of them runs. */
  private stopRequested = new Map<string, string>();
  /** Set by stopAll: the proplet is going away, so a start that comes now is refused instead of run. */
  private closing = false;
  /** Resolved when the last run here has ended (stopAll's wait). */
  private emptied?: () => void;
  prom?: PropletPrometheus;
  /** Told when a run here has ended, whatever its end (a standalone proplet gives memory back after a burst). */
  onEnded?: () => void;
  private pool: WorkerPool;
  private modules = new ModuleCache();
  readonly host?: HostRuntime;
  /** Latent tasks deployed here, ready for invocations. */
  private deployed = new Map<string, RunSpec>();
  /** A latent task's invocations running here: stopped with its deployment. */
  private invoking = new Map<string, Set<Running>>();
  /**
   * Latent tasks still being fetched and compiled (on the compile thread), by task id: an invocation that comes
   * meanwhile (the manager shows the task Running as soon as it sent the start) waits for the deployment.
   */
  private deploying = new Map<string, Promise<void>>();

  constructor(
    private cfg: PropletConfig,
    private link: PropletLink,
    private chunks: ChunkAssembler,
  ) {
    // Warm as many workers as tasks may run at once (up to the cores); more spawn on demand up to max_tasks. All
    // but one retire after idling (pool.ts).
    // The host runtime needs no worker threads; the pool is then empty and never used.
    this.host = cfg.runtime === "host" ? new HostRuntime(cfg.externalRuntime, cfg.stateDir) : undefined;
    this.pool = new WorkerPool(this.host ? 0 : Math.min(cfg.maxTasks, cpus().length), cfg.maxTasks);
  }

  private get id(): string {
    return this.cfg.entityId;
  }

  get size(): number {
    return this.running.size;
  }

  /** The runs here, as a heartbeat lists them. */
  listed(): Iterable<ListedRun> {
    return this.running.values();
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

  async onStart(payload: Buffer): Promise<void> {
    const d = decode(StartMsg, payload, undefined, plainStart);
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
    if (startSeenBefore(msg, this.link, this.id)) return;
    if (this.closing) {
      log.warn(`task ${msg.id}: start refused, the proplet is shutting down`);
      const runId = msg.run_id ? { run_id: msg.run_id } : {};
      await this.link.publishResult({
        task_id: msg.id,
        proplet_id: this.id,
        ...runId,
        results: "",
        error: SHUTTING_DOWN,
      });
      return;
    }
    // Recorded (on disk) before anything of it runs: a crash after this cannot make the run look never received.
    if (msg.run_id) this.link.record.received(msg.run_id, msg.id, msg.latent);
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
      return this.link.publishResult({ task_id: msg.id, proplet_id: this.id, ...runId, results: "", error });
    };
    try {
      const options = parseRuntimeOptions(msg.cli_args);
      if (typeof options === "string") return await fail(options);
      const refused = refusedDir(options.dirs, this.cfg.allowedDirs ?? [], this.id);
      if (refused) return await fail(refused);
      const badEnv = envError(msg.env ?? {});
      if (badEnv) return await fail(badEnv);
      if (msg.latent && this.host) return await fail("latent tasks are not supported by the host runtime");
      const bytes = await loadModule(msg, this.cfg, this.chunks);
      if (typeof bytes === "string") return await fail(bytes);
      if (this.stopRequested.has(key)) return await fail(this.stopReason(key));
      // The guest may know which task, run and attempt it is (a ledger of executions kept outside the manager counts
      // them: scripts/chaos, test/e2e/exactly-once.test.ts); after the task's env, so a task cannot forge them.
      const env: Record<string, string> = {
        PROPLET_ID: this.id,
        ...msg.env,
        PROPELLER_TASK_ID: msg.id,
        ...(msg.run_id ? { PROPELLER_RUN_ID: msg.run_id } : {}),
        PROPELLER_ATTEMPT: String(msg.attempt ?? 1),
      };
      if (isFlTask(env)) {
        const prep = await prepareFl(env, this.flContext());
        if (typeof prep === "string") return await fail(prep);
        fl = prep;
        Object.assign(env, prep.env);
        options.dirs.push(prep.dir);
        if (this.stopRequested.has(key)) return await fail(this.stopReason(key));
      }
      const timeoutMs = (msg.timeout_s ?? 0) * 1000;
      log.info(`task running (${msg.name})`, about);
      const cap = this.cfg.maxTaskMemoryMb ?? DEFAULT_TASK_MEMORY_MB;
      const maxMemoryMb = Math.min(msg.max_memory_mb ?? cap, cap);
      const req = {
        ...{ name: msg.name, inputs: msg.inputs ?? [], env, options, timeoutMs, maxMemoryMb },
        maxDiskMb: this.cfg.maxTaskDiskMb,
        onOutput: this.link.outputSender(msg.id),
      };
      let run: Running;
      if (this.host) run = this.host.run(key, { ...req, bytes });
      else {
        const spec = { ...req, compiled: await this.modules.load(bytes, maxMemoryMb) };
        // Compiling is done on its own thread, so a stop may have come meanwhile.
        if (this.stopRequested.has(key)) return await fail(this.stopReason(key));
        run = msg.latent ? this.deploy(msg.id, spec) : this.pool.run(spec);
        settleDeploy();
      }
      entry.running = run;
      this.prom?.started.inc();
      const monitor = monitorTask(msg, run, this.id, this.link);
      const ran = await run.done;
      clearInterval(monitor);
      let r: { ok: boolean; results: unknown; error?: string } = { ok: ran.ok, results: ran.result, error: ran.error };
      if (fl?.round && ran.ok) {
        // An FL round's task succeeds when its update was delivered; its result is upstream's FL envelope.
        const { delivery, envelope } = await deliverUpdate(ran.result, fl, this.flContext(), (topic, body) =>
          publishRaw(this.link.client!, topic, body, 1),
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
      await this.link.publishResult({
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
      this.onEnded?.();
      if (this.running.size === 0) this.emptied?.();
    }
  }

  /** Why a run still preparing was told to stop (and the request taken). */
  private stopReason(key: string): string {
    const why = this.stopRequested.get(key) ?? STOPPED;
    this.stopRequested.delete(key);
    return why;
  }

  private flContext(): FlContext {
    const ca = typeof this.cfg.tls?.ca === "string" ? this.cfg.tls.ca : undefined;
    return {
      propletId: this.id,
      apiKey: this.cfg.apiKey,
      processEnv: process.env,
      gatewayUrl: this.gatewayUrl,
      ...(ca ? { ca } : {}),
    };
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
      stop: (reason = STOPPED) => {
        this.deployed.delete(id);
        // Its invocations end with it: one looping went on at a core's full speed after the task was stopped.
        for (const inv of this.invoking.get(id) ?? []) inv.stop(reason);
        this.invoking.delete(id);
        end({ ok: false, result: "", error: reason });
      },
    };
  }

  /** An invocation of a latent task deployed here: run on a pool worker, answered by invocation id. */
  async onInvoke(payload: Buffer): Promise<void> {
    const d = decode(InvokeMsg, payload);
    if (!d.ok) {
      log.warn(`dropped malformed invoke message: ${d.error}`);
      return;
    }
    const msg = d.value;
    if (!msg.broadcast && msg.proplet_id && msg.proplet_id !== this.id) return;
    const reply = (results: string, error: string | null) =>
      publishJson(
        this.link.client!,
        this.link.t.invokeResults,
        {
          task_id: msg.id,
          invocation_id: msg.invocation_id,
          proplet_id: this.id,
          results,
          error,
        },
        this.link.qos,
      ).catch(() => {});
    await this.deploying.get(msg.id);
    const spec = this.deployed.get(msg.id);
    if (!spec) return reply("", `task ${msg.id} has not been precompiled; deploy it as a latent task first`);
    const run = this.pool.run({
      ...spec,
      inputs: msg.inputs ?? [],
      env: { ...spec.env, ...(msg.env ?? {}) },
      // The task's own bound per invocation, else the manager's wait for the answer.
      timeoutMs: spec.timeoutMs || INVOKE_TIMEOUT_MS,
      onOutput: undefined,
    });
    const mine = this.invoking.get(msg.id) ?? new Set<Running>();
    this.invoking.set(msg.id, mine.add(run));
    const r = await run.done.finally(() => mine.delete(run));
    await reply(r.result, r.ok ? null : (r.error ?? "failed"));
  }

  /** A stop names the task: every run of it here stops (one still preparing, once it is ready). */
  onStop(payload: Buffer): void {
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
      if (r.running === "preparing") this.stopRequested.set(k, STOPPED);
      else r.running.stop();
    }
    log.info(`task ${id} stopping`);
  }

  /**
   * The proplet is shutting down: every run is stopped (one still preparing, once it is ready), a start that comes
   * now is refused, and this resolves once they have all published their end, or after `graceMs`: the manager
   * then reads why each ended ("proplet shutting down"), not that the proplet went away under it.
   */
  async stopAll(graceMs: number): Promise<void> {
    this.closing = true;
    for (const [k, r] of this.running) {
      if (r.running === "preparing") this.stopRequested.set(k, SHUTTING_DOWN);
      else r.running.stop(SHUTTING_DOWN);
    }
    if (this.running.size === 0) return;
    let timer: Timer | undefined;
    await Promise.race([
      new Promise<void>((resolve) => (this.emptied = resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
  }

  close(): void {
    this.pool.close();
    this.link.record.close();
  }
}
