import type { Context, MiddlewareHandler } from "hono";
import client from "prom-client";
import { STATE_NAMES } from "../../core/states.ts";
import { processMetrics } from "./process-metrics.ts";

// Prometheus metrics of the manager (`GET /metrics`): tasks by state, starts/completions/failures, queue depth,
// proplets alive, MQTT messages in and out, HTTP request latency.

export interface MetricsSource {
  tasksByState(): Record<number, number>;
  queueDepth(): number;
  propletsAlive(): number;
  counters: { starts: number; completions: number; failures: number; interruptions: number };
  mqtt: { received: number; sent: number };
  /** serve's TLS certificates and when each expires (none without TLS). */
  certificates?: () => { cert: string; notAfter: Date }[];
  /** Modules the site's trust policy refused, by rule (none without --trust-policy). */
  trustRefusals?: ReadonlyMap<string, number>;
  /** This build, as `propeller_build_info{version,commit} 1`. */
  build?: { version: string; commit: string };
}

export class ManagerMetrics {
  readonly registry = new client.Registry();
  private http: client.Histogram<"method" | "route" | "status">;

  constructor(src: MetricsSource) {
    const r = [this.registry];
    processMetrics(this.registry);
    if (src.build) {
      new client.Gauge({
        name: "propeller_build_info",
        help: "This build: version and commit (always 1)",
        labelNames: ["version", "commit"],
        registers: r,
      }).set({ version: src.build.version, commit: src.build.commit }, 1);
    }
    new client.Gauge({
      name: "propeller_tasks",
      help: "Tasks by state",
      labelNames: ["state"],
      registers: r,
      collect() {
        const counts = src.tasksByState();
        for (const [i, name] of STATE_NAMES.entries()) this.set({ state: name }, counts[i] ?? 0);
      },
    });
    const counter = (name: string, help: string, read: () => number) =>
      new client.Counter({
        name,
        help,
        registers: r,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter("propeller_task_starts_total", "Runs started on proplets", () => src.counters.starts);
    counter("propeller_task_completions_total", "Runs that completed", () => src.counters.completions);
    counter("propeller_task_failures_total", "Runs that failed", () => src.counters.failures);
    counter(
      "propeller_task_interruptions_total",
      "Runs stopped by a user or a shutdown",
      () => src.counters.interruptions,
    );
    const refusals = src.trustRefusals;
    if (refusals)
      new client.Counter({
        name: "propeller_trust_refusals_total",
        help: "Modules the trust policy refused (at creation, dispatch or the proxy), by rule",
        labelNames: ["rule"],
        registers: r,
        collect() {
          this.reset();
          for (const [rule, n] of refusals) this.inc({ rule }, n);
        },
      });
    counter("propeller_mqtt_messages_received_total", "MQTT messages the manager received", () => src.mqtt.received);
    counter("propeller_mqtt_messages_sent_total", "MQTT messages the manager published", () => src.mqtt.sent);
    new client.Gauge({
      name: "propeller_queue_depth",
      help: "Tasks waiting for a proplet slot",
      registers: r,
      collect() {
        this.set(src.queueDepth());
      },
    });
    new client.Gauge({
      name: "propeller_proplets_alive",
      help: "Proplets with a recent heartbeat",
      registers: r,
      collect() {
        this.set(src.propletsAlive());
      },
    });
    if (src.certificates) {
      const certs = src.certificates;
      new client.Gauge({
        name: "propeller_certificate_expiry_seconds",
        help: "Seconds until each of serve's TLS certificates expires (negative: expired)",
        labelNames: ["cert"],
        registers: r,
        // Whole seconds left, rounded down: a certificate issued for 10 days never shows 10 days a moment later.
        collect() {
          for (const c of certs()) this.set({ cert: c.cert }, Math.floor((c.notAfter.getTime() - Date.now()) / 1000));
        },
      });
    }
    this.http = new client.Histogram({
      name: "propeller_http_request_duration_seconds",
      help: "REST API request latency",
      labelNames: ["method", "route", "status"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r,
    });
  }

  /** Hono middleware timing every request; the route pattern keeps label cardinality bounded. */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      const t0 = performance.now();
      await next();
      this.observe(c, t0);
    };
  }

  /** A request answered, which started at `t0` (performance.now()). */
  observe(c: Context, t0: number): void {
    this.http.observe(
      { method: c.req.method, route: c.req.routePath || "unknown", status: String(c.res.status) },
      (performance.now() - t0) / 1000,
    );
  }
}
