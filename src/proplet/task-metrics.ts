import type { StartMsg } from "../core/messages.ts";
import type { PropletLink } from "./link.ts";
import { aggregate, ProcSampler, profileFor, type TaskSample } from "./monitor.ts";
import type { Running } from "./runtime/pool.ts";

/** Task metrics per monitoring profile: /proc for host-runtime tasks, linear memory for in-process ones. */
export function monitorTask(msg: StartMsg, run: Running, propletId: string, link: PropletLink): Timer | undefined {
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
    if (!s || !link.takesTaskMetrics) return;
    history.push(s);
    if (history.length > profile.historySize) history.shift();
    const payload = {
      task_id: msg.id,
      proplet_id: propletId,
      ...(msg.run_id ? { run_id: msg.run_id } : {}),
      metrics: s,
      aggregated: aggregate(history),
      timestamp: new Date().toISOString(),
    };
    link.publishTaskMetrics(JSON.stringify(payload));
  }, profile.intervalS * 1000);
}
