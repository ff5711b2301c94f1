import client from "prom-client";

// A proplet's own Prometheus endpoint (optional: PROPLET_METRICS_PORT): tasks running, started, completed,
// failed, and the process's memory and CPU.

export class PropletPrometheus {
  readonly registry = new client.Registry();
  readonly started = new client.Counter({
    name: "proplet_tasks_started_total",
    help: "Tasks this proplet started",
    registers: [this.registry],
  });
  readonly completed = new client.Counter({
    name: "proplet_tasks_completed_total",
    help: "Tasks that completed",
    registers: [this.registry],
  });
  readonly failed = new client.Counter({
    name: "proplet_tasks_failed_total",
    help: "Tasks that failed",
    registers: [this.registry],
  });
  private server?: ReturnType<typeof Bun.serve>;

  constructor(running: () => number) {
    const r = [this.registry];
    new client.Gauge({
      name: "proplet_tasks_running",
      help: "Tasks running now",
      registers: r,
      collect() {
        this.set(running());
      },
    });
    new client.Gauge({
      name: "proplet_resident_memory_bytes",
      help: "Resident set size",
      registers: r,
      collect() {
        this.set(process.memoryUsage().rss);
      },
    });
    new client.Gauge({
      name: "proplet_cpu_seconds",
      help: "CPU time used by the proplet process (user + system)",
      registers: r,
      collect() {
        const u = process.cpuUsage();
        this.set((u.user + u.system) / 1e6);
      },
    });
  }

  listen(port: number, hostname = "127.0.0.1"): number {
    this.server = Bun.serve({
      port,
      hostname,
      // Never share the port with another process (Bun sets SO_REUSEPORT in production mode).
      reusePort: false,
      fetch: async (req) =>
        new URL(req.url).pathname === "/metrics"
          ? new Response(await this.registry.metrics(), { headers: { "content-type": this.registry.contentType } })
          : new Response("not found", { status: 404 }),
    });
    return this.server.port!;
  }

  close(): void {
    this.server?.stop(true);
  }
}
