import { readdirSync, readFileSync } from "node:fs";
import client from "prom-client";
import { statFields } from "../../core/procstat.ts";

// The standard process_* metrics (Prometheus' client conventions), read from /proc when scraped. prom-client's
// collectDefaultMetrics has them too, but it also starts an event-loop delay monitor sampling every 10 ms: an idle
// serve used 0.11 CPU s per 10 s with it, 0.04 without (measured), which an edge box pays all day.

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc's times: 100 on every Linux this runs on (USER_HZ). */
const TICKS = 100;

export function processMetrics(registry: client.Registry): void {
  const r = [registry];
  const gauge = (name: string, help: string, value: () => number | undefined) =>
    new client.Gauge({
      name,
      help,
      registers: r,
      collect() {
        const v = value();
        if (v !== undefined && Number.isFinite(v)) this.set(v);
      },
    });
  new client.Counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds",
    registers: r,
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  gauge("process_resident_memory_bytes", "Resident memory size in bytes", () => process.memoryUsage().rss);
  gauge("process_virtual_memory_bytes", "Virtual memory size in bytes", () => {
    const f = read("/proc/self/stat");
    return f ? Number(statFields(f)[20]) : undefined;
  });
  gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds", () => {
    const f = read("/proc/self/stat");
    const uptime = read("/proc/uptime");
    if (!f || !uptime) return undefined;
    const bootS = Date.now() / 1000 - Number(uptime.split(" ")[0]);
    return Math.round(bootS + Number(statFields(f)[19]) / TICKS);
  });
  gauge("process_open_fds", "Number of open file descriptors", () => {
    try {
      return readdirSync("/proc/self/fd").length - 1; // the directory being read is one
    } catch {
      return undefined;
    }
  });
  gauge("process_max_fds", "Maximum number of open file descriptors", () => {
    const m = /^Max open files\s+(\d+)/m.exec(read("/proc/self/limits") ?? "");
    return m ? Number(m[1]) : undefined;
  });
  gauge("process_heap_bytes", "JavaScript heap in use, in bytes", () => process.memoryUsage().heapUsed);
}
