import { nearest } from "./nearest.ts";

// The environment variables propeller reads, so that a misspelt one is said at start instead of ignored:
// `PROPELLER_HTTP_PROT=8080 propeller serve` listened on the default port and said nothing. A unit test keeps
// this list and the sources in step (test/unit/core/env-names.test.ts).

/** Every PROPELLER_, PROPLET_ and PROXY_ variable some command reads. */
export const ENV_NAMES: ReadonlySet<string> = new Set([
  "PROPELLER_ADVERTISE_URL",
  "PROPELLER_ALLOWED_ORIGINS",
  "PROPELLER_AUTH",
  "PROPELLER_CA_CERT",
  "PROPELLER_CHANNEL_ID",
  "PROPELLER_CHUNK_SIZE",
  "PROPELLER_CONFIG",
  "PROPELLER_DATA_DIR",
  "PROPELLER_DB_URL",
  "PROPELLER_DOMAIN_ID",
  "PROPELLER_FL_URL",
  "PROPELLER_HOST",
  "PROPELLER_HTTP_PORT",
  "PROPELLER_INSECURE_REGISTRIES",
  "PROPELLER_KEY_PASSPHRASE",
  "PROPELLER_LIVELINESS_INTERVAL",
  "PROPELLER_LIVELINESS_THRESHOLD",
  "PROPELLER_LOCAL_MAX_TASKS",
  "PROPELLER_LOCAL_PROPLET",
  "PROPELLER_LOGIN_LINK_TTL",
  "PROPELLER_LOG_FORMAT",
  "PROPELLER_LOG_LEVEL",
  "PROPELLER_MAX_BODY_MB",
  "PROPELLER_MAX_MODULE_MB",
  "PROPELLER_MAX_STREAMS",
  "PROPELLER_MAX_STREAMS_PER_TOKEN",
  "PROPELLER_MQTT_CONNECTION_RATE",
  "PROPELLER_MQTT_LOOPBACK_MAX_CONNECTIONS",
  "PROPELLER_MQTT_MAX_CONNECTIONS_PER_ADDRESS",
  "PROPELLER_MQTT_MAX_MESSAGE_MB",
  "PROPELLER_MQTT_PORT",
  "PROPELLER_MQTT_TLS_PORT",
  "PROPELLER_MQTT_URL",
  "PROPELLER_PARTITION_GRACE",
  "PROPELLER_PROXY",
  "PROPELLER_REGISTRIES_D",
  "PROPELLER_REGISTRY_ALLOW",
  "PROPELLER_REGISTRY_AUTH_HOSTS",
  "PROPELLER_REGISTRY_PASSWORD",
  "PROPELLER_REGISTRY_TOKEN",
  "PROPELLER_REGISTRY_USERNAME",
  "PROPELLER_SCHEDULER",
  "PROPELLER_SNAPSHOT_INTERVAL",
  "PROPELLER_SNAPSHOT_KEEP",
  "PROPELLER_STALE_PROPLET_REMOVAL",
  "PROPELLER_STORAGE",
  "PROPELLER_TLS_CERT",
  "PROPELLER_TLS_CLIENT_CA",
  "PROPELLER_TLS_KEY",
  "PROPELLER_TOKEN",
  "PROPELLER_TRUST_POLICY",
  "PROPELLER_TRUST_PROPLET_LABELS",
  "PROPELLER_URL",
  "PROPLET_API_KEY",
  "PROPLET_CGROUP_ROOT",
  "PROPLET_CHANNEL_ID",
  "PROPLET_CONFIG_FILE",
  "PROPLET_CONFIG_SECTION",
  "PROPLET_DATA_DIR",
  "PROPLET_DECRYPTION_KEYS",
  "PROPLET_DESCRIPTION",
  "PROPLET_DIRS",
  "PROPLET_DOMAIN_ID",
  "PROPLET_ENTITY_ID",
  "PROPLET_EXTERNAL_WASM_RUNTIME",
  "PROPLET_FETCH_TIMEOUT",
  "PROPLET_FL_URL",
  "PROPLET_JOIN_TOKEN",
  "PROPLET_JOIN_URL",
  "PROPLET_LIVELINESS_INTERVAL",
  "PROPLET_LOCATION",
  "PROPLET_LOG_LEVEL",
  "PROPLET_MANAGER_K8S_NAMESPACE",
  "PROPLET_MAX_MODULE_MB",
  "PROPLET_MAX_TASKS",
  "PROPLET_MAX_TASK_DISK_MB",
  "PROPLET_MAX_TASK_MEMORY_MB",
  "PROPLET_METRICS_INTERVAL",
  "PROPLET_METRICS_PORT",
  "PROPLET_MQTT_ADDRESS",
  "PROPLET_MQTT_KEEPALIVE",
  "PROPLET_MQTT_KEEP_ALIVE",
  "PROPLET_MQTT_TLS_CA_CERT",
  "PROPLET_MQTT_TLS_CLIENT_CERT",
  "PROPLET_MQTT_TLS_CLIENT_KEY",
  "PROPLET_MQTT_TLS_INSECURE_SKIP_VERIFY",
  "PROPLET_OTEL_URL",
  "PROPLET_REGISTRIES_D",
  "PROPLET_RUNTIME",
  "PROPLET_TAGS",
  "PROPLET_TEE_ROOT",
  "PROPLET_TENANT_ID",
  "PROPLET_TRACE_RATIO",
  "PROPLET_TRUST_POLICY",
  "PROXY_API_KEY",
  "PROXY_CONFIG_FILE",
  "PROXY_ENTITY_ID",
]);

/**
 * What propeller sets in a task's environment: meaningless in its own (a shell that ran a task's line again), and
 * said so rather than called a typo.
 */
const GUEST_NAMES = new Set(["PROPELLER_TASK_ID", "PROPELLER_RUN_ID", "PROPELLER_ATTEMPT", "PROPLET_ID"]);

/** Upstream's proplet and proxy settings (its Rust proplet's, its Go proxy's) that this one has no use for. */
const UPSTREAM_ONLY = new Set([
  "PROPLET_MQTT_TIMEOUT",
  "PROPLET_MQTT_QOS",
  "PROPLET_MQTT_MAX_PACKET_SIZE",
  "PROPLET_MQTT_INFLIGHT",
  "PROPLET_MQTT_REQUEST_CHANNEL_CAPACITY",
  "PROPLET_HTTP_TLS_CA_CERT",
  "PROPLET_HTTP_TLS_INSECURE_SKIP_VERIFY",
  "PROPLET_ENABLE_MONITORING",
  "PROPLET_KBS_URI",
  "PROPLET_AA_CONFIG_PATH",
  "PROPLET_LAYER_STORE_PATH",
  "PROPLET_PULL_CONCURRENT_LIMIT",
  "PROPLET_HAL_ENABLED",
  "PROPLET_HTTP_ENABLED",
  "PROPLET_USB_ENABLED",
  "PROPLET_HTTP_PROXY_PORT",
  "PROPLET_COLLECT_SYSTEM_INFO",
  "PROPLET_PLUGIN_DIR",
  "PROPLET_METRICS_ENABLED",
  "PROPLET_INSTANCE_ID",
  "PROXY_MQTT_ADDRESS",
  "PROXY_MQTT_TIMEOUT",
  "PROXY_MQTT_QOS",
  "PROXY_MQTT_TLS_CA_CERT",
  "PROXY_CHANNEL_ID",
  "PROXY_TENANT_ID",
  "PROXY_CHUNK_SIZE",
  "PROXY_REGISTRY_URL",
  "PROXY_REGISTRY_TOKEN",
  "PROXY_AUTHENTICATE",
  "PROXY_HTTP_PORT",
  "PROXY_LOG_LEVEL",
  "PROXY_OTEL_URL",
  "PROXY_TRACE_RATIO",
]);

/**
 * Settings that protect: one misspelt leaves a proplet or serve without the protection an operator set out to
 * give it (PROPLET_TRUST_POLCY ran every module), so a near miss of one of these refuses the start.
 */
const PROTECTING = new Set([
  "PROPELLER_TRUST_POLICY",
  "PROPELLER_REGISTRIES_D",
  "PROPELLER_REGISTRY_ALLOW",
  "PROPELLER_AUTH",
  "PROPELLER_TLS_CERT",
  "PROPELLER_TLS_KEY",
  "PROPELLER_TLS_CLIENT_CA",
  "PROPLET_TRUST_POLICY",
  "PROPLET_REGISTRIES_D",
  "PROPLET_MQTT_TLS_CA_CERT",
  "PROPLET_MQTT_TLS_CLIENT_CERT",
  "PROPLET_MQTT_TLS_CLIENT_KEY",
  "PROPLET_DECRYPTION_KEYS",
  "PROPLET_MAX_TASK_MEMORY_MB",
  "PROPLET_MAX_TASK_DISK_MB",
]);

/** The misspelt names among `names` that are near a protecting setting: each a line saying which. */
export function envRefusals(names: Iterable<string>): string[] {
  const protecting = [...PROTECTING];
  const out: string[] = [];
  for (const name of [...names].sort()) {
    if (ENV_NAMES.has(name) || !/^(PROPELLER|PROPLET|PROXY)_/.test(name) || name.length > 100) continue;
    const near = nearest(name, protecting);
    if (near) out.push(`${name} is not a setting propeller reads (did you mean ${near}?)`);
  }
  return out;
}

/**
 * A line for each variable of the environment that looks like one of propeller's and is none: PROPELLER_ and
 * PROPLET_ names, and PROXY_ names near one of ours (other software has PROXY_ variables of its own).
 */
export function envWarnings(names: Iterable<string>): string[] {
  const known = [...ENV_NAMES];
  const out: string[] = [];
  for (const name of [...names].sort()) {
    if (ENV_NAMES.has(name)) continue;
    if (!/^(PROPELLER|PROPLET|PROXY)_/.test(name) || name.length > 100) continue;
    if (GUEST_NAMES.has(name)) {
      out.push(`${name} is set in a task's environment by propeller; in propeller's own it means nothing`);
      continue;
    }
    if (UPSTREAM_ONLY.has(name)) {
      out.push(`${name} is a setting of upstream's proplet or proxy that this one does not read: ignored`);
      continue;
    }
    const near = nearest(name, known);
    if (name.startsWith("PROXY_") && !near) continue;
    out.push(`${name} is not a setting propeller reads: ignored${near ? ` (did you mean ${near}?)` : ""}`);
  }
  return out;
}
