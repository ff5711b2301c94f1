import type { ParsedArgs } from "citty";
import { DEFAULT_LIMITS } from "../broker/limits.ts";
import { SCHEDULERS } from "../core/scheduler.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { DEFAULT_STREAM_LIMITS } from "../manager/api/streams.ts";
import { defaultMaxTasks } from "../proplet/config.ts";
import { DEFAULT_REGISTRIES_D } from "../proxy/trust.ts";
import { STORAGE_HELP } from "../storage/open.ts";
import { defaultDataDir, logArgs } from "./args.ts";
import { type Layers, SYSTEM_CONFIG } from "./layers.ts";
import { proxyArgs } from "./proxy.ts";
import { DEFAULT_PARTITION_GRACE_S } from "./site-options.ts";

// serve's flag table: each flag's --help text and its default through the layers (flag, environment, config
// file, default). Apart from serve.ts so that adding a flag and its help does not touch how serve runs; the
// checks that turn these strings into ServeOptions are in serve-options.ts.

/** serve's flags, their defaults read through `L` (made anew each time citty reads the arguments). */
export function serveFlags(L: Layers) {
  return {
    config: {
      type: "string",
      description: `settings file, section [serve] (default ${SYSTEM_CONFIG} when present; env PROPELLER_CONFIG)`,
    },
    host: {
      type: "string",
      description: "address to listen on (env PROPELLER_HOST); loopback by default, 0.0.0.0 for every interface",
      default: L.text("host", ["PROPELLER_HOST"], "127.0.0.1"),
    },
    "http-port": {
      type: "string",
      description: "REST API, console and MQTT-over-WebSocket port (env PROPELLER_HTTP_PORT)",
      default: L.text("http-port", ["PROPELLER_HTTP_PORT"], "7070"),
    },
    "mqtt-port": {
      type: "string",
      description: "embedded MQTT broker TCP port (env PROPELLER_MQTT_PORT)",
      default: L.text("mqtt-port", ["PROPELLER_MQTT_PORT"], "1883"),
    },
    "mqtt-max-message-mb": {
      type: "string",
      description:
        "largest MQTT message an authenticated client may send to the embedded broker, in MiB; module chunks need 16 (env PROPELLER_MQTT_MAX_MESSAGE_MB)",
      default: L.text("mqtt-max-message-mb", ["PROPELLER_MQTT_MAX_MESSAGE_MB"], "16"),
    },
    "mqtt-max-connections-per-address": {
      type: "string",
      description:
        "MQTT connections (TCP and /mqtt) open at once from one address, loopback aside (env PROPELLER_MQTT_MAX_CONNECTIONS_PER_ADDRESS)",
      default: L.text(
        "mqtt-max-connections-per-address",
        ["PROPELLER_MQTT_MAX_CONNECTIONS_PER_ADDRESS"],
        String(DEFAULT_LIMITS.perAddress.max),
      ),
    },
    "mqtt-connection-rate": {
      type: "string",
      description:
        "new MQTT connections a second from one address, loopback aside, after a burst of the per-address cap (env PROPELLER_MQTT_CONNECTION_RATE)",
      default: L.text(
        "mqtt-connection-rate",
        ["PROPELLER_MQTT_CONNECTION_RATE"],
        String(DEFAULT_LIMITS.perAddress.perSecond),
      ),
    },
    "mqtt-loopback-max-connections": {
      type: "string",
      description:
        "MQTT connections open at once from loopback, and new ones a second (env PROPELLER_MQTT_LOOPBACK_MAX_CONNECTIONS)",
      default: L.text(
        "mqtt-loopback-max-connections",
        ["PROPELLER_MQTT_LOOPBACK_MAX_CONNECTIONS"],
        String(DEFAULT_LIMITS.loopback.max),
      ),
    },
    "tls-cert": {
      type: "string",
      description:
        "PEM certificate chain: HTTPS and WSS, and MQTT over TLS instead of plain MQTT (env PROPELLER_TLS_CERT)",
      default: L.text("tls-cert", ["PROPELLER_TLS_CERT"]),
    },
    "tls-key": {
      type: "string",
      description: "PEM private key of --tls-cert (env PROPELLER_TLS_KEY)",
      default: L.text("tls-key", ["PROPELLER_TLS_KEY"]),
    },
    "tls-client-ca": {
      type: "string",
      description: "PEM CA whose client certificates MQTT-over-TLS clients must show (env PROPELLER_TLS_CLIENT_CA)",
      default: L.text("tls-client-ca", ["PROPELLER_TLS_CLIENT_CA"]),
    },
    "mqtt-tls-port": {
      type: "string",
      description: "MQTT over TLS port, with --tls-cert (env PROPELLER_MQTT_TLS_PORT)",
      default: L.text("mqtt-tls-port", ["PROPELLER_MQTT_TLS_PORT"], "8883"),
    },
    "trust-policy": {
      type: "string",
      description:
        "containers-policy.json: only modules it accepts run (signedBy GPG keys, sigstoreSigned cosign keys, reject, insecureAcceptAnything); checked at task (and job, workflow) creation, dispatch, the proxy and the proplet; SIGHUP reads it again (env PROPELLER_TRUST_POLICY)",
      default: L.text("trust-policy", ["PROPELLER_TRUST_POLICY"]),
    },
    "registries-d": {
      type: "string",
      description: `where each registry's signatures are (registries.d *.yaml, lookaside file:// or http(s)://) (env PROPELLER_REGISTRIES_D)`,
      default: L.text("registries-d", ["PROPELLER_REGISTRIES_D"], DEFAULT_REGISTRIES_D),
    },
    "data-dir": {
      type: "string",
      description: "where the SQLite database, the admin token and the module cache live (env PROPELLER_DATA_DIR)",
      default: L.text("data-dir", ["PROPELLER_DATA_DIR"], defaultDataDir()),
    },
    storage: {
      type: "string",
      description: `where state is kept (env PROPELLER_STORAGE): ${Object.entries(STORAGE_HELP)
        .map(([k, v]) => `${k}: ${v}`)
        .join("; ")}`,
      default: L.text("storage", ["PROPELLER_STORAGE"], "sqlite"),
    },
    "postgres-url": {
      type: "string",
      description: "postgres://USER:PASSWORD@HOST:5432/DB for --storage postgres (env PROPELLER_DB_URL)",
      default: L.text("postgres-url", ["PROPELLER_DB_URL"]),
    },
    "advertise-url": {
      type: "string",
      description:
        "with --storage postgres and a second manager: where the others reach this one's REST API (env PROPELLER_ADVERTISE_URL)",
      default: L.text("advertise-url", ["PROPELLER_ADVERTISE_URL"]),
    },
    "mqtt-url": {
      type: "string",
      description:
        "use this external broker instead of the embedded one, e.g. mqtt://host:1883 (env PROPELLER_MQTT_URL)",
      default: L.text("mqtt-url", ["PROPELLER_MQTT_URL"]),
    },
    auth: {
      type: "boolean",
      description: "require a bearer token on REST and credentials on MQTT (env PROPELLER_AUTH=false to disable)",
      negativeDescription: "no authentication at all: for throwaway runs on loopback only",
      default: L.bool("auth", "PROPELLER_AUTH", true),
    },
    "allowed-origins": {
      type: "string",
      description:
        "comma-separated browser origins (scheme://host[:port]), besides serve's own, that may open /mqtt and send changes; with --no-auth, also names serve answers to (env PROPELLER_ALLOWED_ORIGINS)",
      default: L.text("allowed-origins", ["PROPELLER_ALLOWED_ORIGINS"]),
    },
    "local-proplet": {
      type: "boolean",
      description: "run a proplet inside serve (env PROPELLER_LOCAL_PROPLET=false to disable)",
      negativeDescription: "do not run a local proplet",
      default: L.bool("local-proplet", "PROPELLER_LOCAL_PROPLET", true),
    },
    proxy: {
      type: "boolean",
      description:
        "run the OCI proxy (env PROPELLER_PROXY=false to disable); on an external broker it logs in with PROXY_ENTITY_ID / PROXY_API_KEY, else as the manager",
      negativeDescription: "do not run the OCI proxy",
      default: L.bool("proxy", "PROPELLER_PROXY", true),
    },
    "domain-id": {
      type: "string",
      description: "MQTT domain id in topics m/{domain}/c/{channel}/… (env PROPELLER_DOMAIN_ID)",
      default: L.text("domain-id", ["PROPELLER_DOMAIN_ID"], DEFAULT_DOMAIN_ID),
    },
    "channel-id": {
      type: "string",
      description: "MQTT channel id (env PROPELLER_CHANNEL_ID)",
      default: L.text("channel-id", ["PROPELLER_CHANNEL_ID"], DEFAULT_CHANNEL_ID),
    },
    "liveliness-interval": {
      type: "string",
      description: "seconds between the local proplet's heartbeats (env PROPELLER_LIVELINESS_INTERVAL)",
      default: L.text("liveliness-interval", ["PROPELLER_LIVELINESS_INTERVAL"], "10"),
    },
    "liveliness-threshold": {
      type: "string",
      description:
        "seconds without heartbeat before a proplet counts as dead; default 3 intervals (env PROPELLER_LIVELINESS_THRESHOLD)",
      default: L.text("liveliness-threshold", ["PROPELLER_LIVELINESS_THRESHOLD"]),
    },
    "partition-grace": {
      type: "string",
      description:
        "seconds a proplet that stops being heard keeps its runs (unreachable) before they are settled as lost (env PROPELLER_PARTITION_GRACE)",
      default: L.text("partition-grace", ["PROPELLER_PARTITION_GRACE"], String(DEFAULT_PARTITION_GRACE_S)),
    },
    "snapshot-interval": {
      type: "string",
      description:
        "write a portable archive of the store into <data-dir>/snapshots this often: 90s, 30m, 6h, 1d; off by default (env PROPELLER_SNAPSHOT_INTERVAL)",
      default: L.text("snapshot-interval", ["PROPELLER_SNAPSHOT_INTERVAL"], "off"),
    },
    "snapshot-keep": {
      type: "string",
      description: "scheduled snapshots kept, the oldest removed (env PROPELLER_SNAPSHOT_KEEP)",
      default: L.text("snapshot-keep", ["PROPELLER_SNAPSHOT_KEEP"], "7"),
    },
    "stale-proplet-removal": {
      type: "string",
      description: "forget proplets silent this many seconds, 0 never (env PROPELLER_STALE_PROPLET_REMOVAL)",
      default: L.text("stale-proplet-removal", ["PROPELLER_STALE_PROPLET_REMOVAL"], "86400"),
    },
    "local-max-tasks": {
      type: "string",
      description: "tasks the local proplet runs at once (env PROPELLER_LOCAL_MAX_TASKS); default twice the CPU count",
      default: L.text("local-max-tasks", ["PROPELLER_LOCAL_MAX_TASKS"], String(defaultMaxTasks())),
    },
    ...proxyArgs((flag, name, fallback) =>
      fallback === undefined ? L.text(flag, [name]) : L.text(flag, [name], fallback),
    ),
    "max-body-mb": {
      type: "string",
      description:
        "MiB a request that carries a module, model, dataset or update may send (env PROPELLER_MAX_BODY_MB); other routes take 256 KiB, sign-in 4 KiB",
      default: L.text("max-body-mb", ["PROPELLER_MAX_BODY_MB"], "100"),
    },
    "max-streams": {
      type: "string",
      description: "event and log streams open at once, in all (env PROPELLER_MAX_STREAMS); more get 503",
      default: L.text("max-streams", ["PROPELLER_MAX_STREAMS"], String(DEFAULT_STREAM_LIMITS.total)),
    },
    "max-streams-per-token": {
      type: "string",
      description: "event and log streams one token may hold open (env PROPELLER_MAX_STREAMS_PER_TOKEN); more get 429",
      default: L.text(
        "max-streams-per-token",
        ["PROPELLER_MAX_STREAMS_PER_TOKEN"],
        String(DEFAULT_STREAM_LIMITS.perToken),
      ),
    },
    "login-link-ttl": {
      type: "string",
      description: "seconds the console sign-in link printed at start works, once (env PROPELLER_LOGIN_LINK_TTL)",
      default: L.text("login-link-ttl", ["PROPELLER_LOGIN_LINK_TTL"], "600"),
    },
    "trust-proplet-labels": {
      type: "boolean",
      description:
        "let labels and TEE types proplets report about themselves meet tasks' requirements; otherwise only labels set on their identities do (env PROPELLER_TRUST_PROPLET_LABELS)",
      default: L.bool("trust-proplet-labels", "PROPELLER_TRUST_PROPLET_LABELS", false),
    },
    scheduler: {
      type: "string",
      description: `proplet choice: ${SCHEDULERS.join(", ")} (env PROPELLER_SCHEDULER)`,
      default: L.text("scheduler", ["PROPELLER_SCHEDULER"], "round-robin"),
    },
    ...logArgs(L),
  } as const;
}

/** serve's arguments as citty parses them from serveFlags. */
export type ServeArgs = ParsedArgs<ReturnType<typeof serveFlags>>;
