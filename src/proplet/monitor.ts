import { readdirSync, readFileSync } from "node:fs";
import { cpuTicks, statFields } from "../core/procstat.ts";
import { MAX_MONITOR_HISTORY, MONITOR_INTERVAL_S, monitorIntervalS } from "../core/task.ts";
import { readCgroup } from "./cgroup.ts";

// What a proplet reports about itself (control/proplet/metrics) and about its tasks (task_metrics), in
// upstream's shapes.

export class PropletSampler {
  private lastCpu = process.cpuUsage();
  private lastMem = { rss: 0, heapUsed: 0, heapTotal: 0 };
  private lastAt = performance.now();

  constructor(
    private id: string,
    private namespace: string,
    private cgroupRoot: string,
  ) {}

  sample(): Record<string, unknown> {
    const cpu = process.cpuUsage();
    const now = performance.now();
    const used = (cpu.user - this.lastCpu.user + cpu.system - this.lastCpu.system) / 1000;
    const percent = now > this.lastAt ? (used / (now - this.lastAt)) * 100 : 0;
    this.lastCpu = cpu;
    this.lastAt = now;
    // Read from /proc: with no file descriptor left (unauthenticated clients holding serve's connections) it throws,
    // and a throw here, on a timer, ended the process. The last reading stands in.
    let mem = this.lastMem;
    try {
      mem = this.lastMem = process.memoryUsage();
    } catch {}
    const cg = readCgroup(this.cgroupRoot);
    return {
      proplet_id: this.id,
      namespace: this.namespace,
      timestamp: new Date().toISOString(),
      cpu_metrics: {
        user_seconds: cpu.user / 1e6,
        system_seconds: cpu.system / 1e6,
        percent: +percent.toFixed(2),
        ...(cg?.cpu_usage_seconds !== undefined ? { container_usage_seconds: cg.cpu_usage_seconds } : {}),
      },
      memory_metrics: {
        rss_bytes: mem.rss,
        heap_alloc_bytes: mem.heapUsed,
        heap_sys_bytes: mem.heapTotal,
        heap_inuse_bytes: mem.heapUsed,
        ...(cg?.memory_usage_bytes !== undefined ? { container_usage_bytes: cg.memory_usage_bytes } : {}),
        ...(cg?.memory_limit_bytes !== undefined ? { container_limit_bytes: cg.memory_limit_bytes } : {}),
      },
    };
  }
}

export interface TaskSample {
  cpu_percent: number;
  memory_bytes: number;
  memory_percent: number;
  disk_read_bytes: number;
  disk_write_bytes: number;
  uptime_seconds: number;
  thread_count: number;
  file_descriptor_count: number;
}

const CLK_TCK = 100;
const PAGE = 4096;

/** Samples a child process from /proc/<pid>: CPU since the last sample, memory, disk I/O, threads, fds. */
export class ProcSampler {
  private lastTicks = 0;
  private lastAt = performance.now();
  private started = performance.now();

  constructor(private pid: number) {}

  sample(): TaskSample | undefined {
    try {
      const f = statFields(readFileSync(`/proc/${this.pid}/stat`, "utf8"));
      if (f[0] === "Z" || f[0] === "X") return undefined; // ended: nothing left to measure
      const ticks = cpuTicks(f);
      const now = performance.now();
      const cpu = ((ticks - this.lastTicks) / CLK_TCK / ((now - this.lastAt) / 1000)) * 100;
      this.lastTicks = ticks;
      this.lastAt = now;
      const rss = Number(f[21]) * PAGE;
      if (rss === 0) return undefined; // exiting: its memory is already gone
      const io = readFileSync(`/proc/${this.pid}/io`, "utf8");
      const ioField = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, "m").exec(io)?.[1] ?? 0);
      const total = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) * 1024;
      return {
        cpu_percent: +cpu.toFixed(2),
        memory_bytes: rss,
        memory_percent: total ? +((rss / total) * 100).toFixed(3) : 0,
        disk_read_bytes: ioField("read_bytes"),
        disk_write_bytes: ioField("write_bytes"),
        uptime_seconds: +((now - this.started) / 1000).toFixed(3),
        thread_count: Number(f[17]),
        file_descriptor_count: readdirSync(`/proc/${this.pid}/fd`).length,
      };
    } catch {
      return undefined; // the process ended between samples
    }
  }
}

/** Upstream's `aggregated` block over the kept history. */
export function aggregate(history: TaskSample[]): Record<string, number> | null {
  if (history.length === 0) return null;
  const avg = (k: keyof TaskSample) => history.reduce((a, s) => a + s[k], 0) / history.length;
  const max = (k: keyof TaskSample) => Math.max(...history.map((s) => s[k]));
  const last = history[history.length - 1]!;
  return {
    avg_cpu_usage: +avg("cpu_percent").toFixed(2),
    max_cpu_usage: max("cpu_percent"),
    avg_memory_usage: Math.round(avg("memory_bytes")),
    max_memory_usage: max("memory_bytes"),
    total_disk_read: last.disk_read_bytes,
    total_disk_write: last.disk_write_bytes,
    sample_count: history.length,
  };
}

/** Named monitoring profiles as upstream: interval in seconds, history kept. */
export function profileFor(
  p: { interval?: number; history_size?: number; enabled?: boolean } | undefined,
  daemon: boolean,
): { enabled: boolean; intervalS: number; historySize: number } {
  const base = daemon ? { intervalS: 120, historySize: 500 } : { intervalS: 10, historySize: 100 };
  if (!p) return { enabled: true, ...base };
  // A Go duration arrives in nanoseconds (docs/ARCHITECTURE.md, "Wire protocol"): 10^6 and above is read as ns.
  const interval = p.interval === undefined ? base.intervalS : monitorIntervalS(p.interval);
  // Clamped, whoever sent it: a manager other than ours may pass on what a client asked.
  const { min, max } = MONITOR_INTERVAL_S;
  return {
    enabled: p.enabled !== false,
    intervalS: interval > 0 ? Math.min(max, Math.max(min, interval)) : base.intervalS,
    historySize: Math.min(MAX_MONITOR_HISTORY, p.history_size || base.historySize),
  };
}
