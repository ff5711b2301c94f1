import { cpus } from "node:os";
import type { ConnectOptions } from "../broker/client.ts";
import type { TrustGate } from "../core/trust-policy.ts";

/**
 * Tasks a proplet runs at once unless told: twice the CPU count. Between one task's end and the next start a slot
 * waits for the result to reach the manager and the start to come back; with one slot per core, short tasks left
 * the cores idle that long (measured, serve with its local proplet on 2 cores: 2,530 tasks/s with 2 slots, 3,024 with
 * 4). CPU-bound tasks then share the cores, each taking up to twice as long: a proplet whose tasks have tight
 * timeouts sets max tasks to the CPU count.
 */
export function defaultMaxTasks(): number {
  return 2 * cpus().length;
}

/** A proplet's settings, read from flags and the environment by `propeller proplet` (src/cli/proplet-settings.ts). */
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
  /** The most linear memory one task may hold, in MiB: the default and the ceiling of a task's max_memory_mb. */
  maxTaskMemoryMb?: number;
  /** Bound on a task's file sizes and file growth in MiB (PROPLET_MAX_TASK_DISK_MB; runtime/disk-cap.ts). */
  maxTaskDiskMb?: number;
  /** The gateway's FL URL (PROPLET_FL_URL; serve's own for its local proplet): its origin may be sent the key. */
  flUrl?: string | (() => string | undefined);
  /** The largest module this proplet takes, in MiB (PROPLET_MAX_MODULE_MB; serve --max-module-mb). */
  maxModuleMb?: number;
  /** Host directories tasks may preopen (and what is below them); none by default. */
  allowedDirs?: string[];
  /** Where cgroup files are read (tests point it at a prepared tree). */
  cgroupRoot?: string;
  /** `host` runs each task as a child process; default in-process worker threads. */
  runtime?: "inprocess" | "host";
  /** With the host runtime: an external CLI (e.g. wasmtime) instead of this executable's `wasm run`. */
  externalRuntime?: string;
  description?: string;
  /** `key=value` tags are labels a task's `requirements` can ask for; a bare tag is `tag=true`. */
  tags?: string[];
  location?: string;
  /**
   * The proplet's own trust policy (PROPLET_TRUST_POLICY): every module is judged by it too, besides the digest
   * the manager approved (docs/ARCHITECTURE.md, "Trusted code").
   */
  trust?: TrustGate;
  /** PEM private keys (a file or a directory) that open encrypted modules (PROPLET_DECRYPTION_KEYS). */
  decryptionKeys?: string;
  /** Where TEE detection looks (`/` on a device; tests point PROPLET_TEE_ROOT at a prepared tree). */
  teeRoot?: string;
  /** TLS to the broker (mqtts://): the CA to trust and an optional client certificate. */
  tls?: ConnectOptions["tls"];
  /**
   * The proplet's own state dir (a standalone proplet's; none for serve's local one): what it must deliver is
   * queued there while its link is down (outbox.ts), with when it went down.
   */
  stateDir?: string;
  /** Seconds between MQTT keep-alive pings: how soon a dead link is noticed (PROPLET_MQTT_KEEPALIVE). */
  keepalive?: number;
  /** Set only for serve's local proplet: talk to the embedded broker in memory. */
  broker?: ConnectOptions["broker"];
}
