import type { Aedes } from "aedes";
import { badRequest } from "../core/errors.ts";

export interface PropletConfig {
  mqttAddress: string;
  entityId: string;
  apiKey: string;
  domainId: string;
  channelId: string;
  namespace: string;
  /** Seconds between heartbeats. */
  livelinessInterval: number;
  /** Tasks run at once; announced as `max_tasks` so the manager queues the rest. */
  maxTasks: number;
  /** How long a task waits for its module's chunks from the proxy, in ms. */
  fetchTimeoutMs?: number;
  /** Seconds between proplet metrics messages; 0 disables them. */
  metricsInterval?: number;
  /** Port of the proplet's own Prometheus endpoint; unset or 0: none. */
  metricsPort?: number;
  /** Where cgroup files are read (tests point it at a prepared tree). */
  cgroupRoot?: string;
  /** `host` runs each task as a child process; default in-process worker threads. */
  runtime?: "inprocess" | "host";
  /** With the host runtime: an external CLI (e.g. wasmtime) instead of this executable's `wasm run`. */
  externalRuntime?: string;
  description?: string;
  tags?: string[];
  location?: string;
  /** Set only for serve's local proplet: talk to the embedded broker in memory. */
  broker?: Aedes;
}

/** Seconds as "10", "0.5" or "10s"; upstream silently kept the default on garbage, we refuse it. */
export function parseSeconds(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === "") return dflt;
  const m = /^(\d+(?:\.\d+)?)s?$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0)
    throw badRequest(`${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
  return Number(m[1]);
}
