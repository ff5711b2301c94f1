import type { BrokerLimits, BrokerTls } from "../broker/broker.ts";
import type { SchedulerName } from "../core/scheduler.ts";
import type { TrustGate } from "../core/trust-policy.ts";
import type { ApiLimits } from "../manager/api/limits.ts";
import type { RegistryClient } from "../proxy/registry.ts";
import type { StorageKind } from "../storage/repository.ts";
import type { LocalEnv } from "./proplet-settings.ts";

// What serve's composition (site.ts) takes, as serve-options.ts checked it from flags and the environment, and
// what it gives back. Apart from site.ts so that the flag side (serve-flags.ts, serve-options.ts) depends on the
// contract, not on the composition and everything it imports.

/** How long a proplet that stops being heard keeps its runs, by default (issue: edge links drop for minutes). */
export const DEFAULT_PARTITION_GRACE_S = 300;

export interface ServeOptions {
  storage: StorageKind;
  postgresUrl?: string;
  /** Where this manager's REST API is reached by the site's other managers (default: its own address). */
  advertiseUrl?: string;
  host: string;
  httpPort: number;
  mqttPort: number;
  dataDir: string;
  mqttUrl?: string;
  localProplet: boolean;
  domainId: string;
  channelId: string;
  /** Seconds between the local proplet's heartbeats. */
  livelinessInterval: number;
  /** Seconds without a heartbeat after which a proplet is not alive. */
  livelinessThreshold: number;
  scheduler: SchedulerName;
  /** Tasks the local proplet runs at once. */
  localMaxTasks: number;
  /**
   * The OCI proxy inside serve, with its registry client, chunk size and the registries any proplet may fetch
   * from (besides what the manager dispatched); none: no proxy.
   */
  proxy?: { registry: RegistryClient; chunkSize: number; allowed: string[] };
  /** Local proplet settings only the environment sets (fetch timeout, metrics, cgroup root). */
  localPropletEnv: LocalEnv;
  /** Seconds after which a silent proplet is forgotten; 0 never. */
  staleRemovalS?: number;
  /** Seconds an unreachable proplet's runs are kept before they are settled as lost. */
  partitionGraceS?: number;
  /** HTTPS and WSS on the HTTP port, and MQTT over TLS on `mqttTlsPort` instead of plain MQTT. */
  tls?: BrokerTls & { mqttTlsPort: number };
  /** The embedded broker's packet, connection and QoS 2 bounds (default broker/limits.ts DEFAULT_LIMITS). */
  brokerLimits?: BrokerLimits;
  /**
   * Browser origins besides serve's own that may open the MQTT WebSocket and send changes, each canonical
   * (core/origins.ts parseOrigin); under --no-auth their hosts are names serve answers to.
   */
  allowedOrigins?: string[];
  /** Tokens on REST and credentials on MQTT; false only for `serve --no-auth` on loopback. */
  auth: boolean;
  /** The manager's identity on an external broker (MANAGER_ENTITY_ID, MANAGER_API_KEY). */
  managerCredentials?: { id: string; key: string };
  /** The embedded OCI proxy's identity (PROXY_ENTITY_ID, PROXY_API_KEY); else the manager's on an external broker. */
  proxyCredentials?: { id: string; key: string };
  /** REST body limits and stream caps (`--max-body-mb`, `--max-streams`, `--max-streams-per-token`). */
  apiLimits?: ApiLimits;
  /** Seconds the console's sign-in link works (once); default 600. */
  loginLinkTtlS?: number;
  /** The largest module accepted, in MiB: a task's inline `file` at the manager, any module at the local proplet. */
  maxModuleMb?: number;
  /** A proplet's own labels and TEE count towards requirements (always so with auth off: there are no identities). */
  trustPropletLabels?: boolean;
  /** A portable archive of the store into `<data-dir>/snapshots` every `intervalS`, the newest `keep` kept. */
  snapshots?: { intervalS: number; keep: number };
  /** The site's trust policy (`--trust-policy`): checked at creation, at dispatch and by the proxy. */
  trust?: TrustGate;
  /** Told when this manager waits as a stand-by (serving, not active): systemd's READY=1, and a renewal's way in. */
  onStandby?: (reloadTls: (tls: BrokerTls) => void) => void;
}

export interface RunningServe {
  httpPort: number;
  mqttPort?: number;
  localPropletId?: string;
  /**
   * A renewed certificate (SIGHUP): MQTT over TLS takes it for new connections in place; HTTPS gets a new listener
   * on the same port (Bun.serve cannot swap a certificate in place), open connections finishing on the old one.
   */
  reloadTls(tls: BrokerTls): void;
  close(): Promise<void>;
}
