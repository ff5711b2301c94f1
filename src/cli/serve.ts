import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { DEFAULT_LIMITS, packetBytesFor } from "../broker/limits.ts";
import { MAX_MODULE_MB_LIMIT } from "../core/module-size.ts";
import { parseOrigin } from "../core/origins.ts";
import { MAX_LIVELINESS_INTERVAL_S } from "../core/proplet.ts";
import { SCHEDULERS, type SchedulerName } from "../core/scheduler.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { log } from "../log.ts";
import { DEFAULT_STREAM_LIMITS } from "../manager/api/streams.ts";
import { defaultMaxTasks } from "../proplet/config.ts";
import type { RegistryClient } from "../proxy/registry.ts";
import { DEFAULT_REGISTRIES_D, TrustConfigError, TrustVerifier } from "../proxy/trust.ts";
import { STORAGE_HELP } from "../storage/open.ts";
import type { StorageKind } from "../storage/repository.ts";
import { action, defaultDataDir, duration, env, int, logArgs, seconds, UsageError } from "./args.ts";
import { privateUmask } from "./data-dir.ts";
import { defaultsOf, Layers, SYSTEM_CONFIG } from "./layers.ts";
import { propletEnv } from "./proplet.ts";
import { chunkSizeFromEnv, proxyArgs, proxySettings, registryFromEnv } from "./proxy.ts";
import { type ReloadTarget, reload } from "./reload.ts";
import { DEFAULT_PARTITION_GRACE_S, serve } from "./site.ts";
import { ServiceNotifier } from "./systemd.ts";
import { checkTlsFiles } from "./tls-files.ts";

/** `--snapshot-interval` and `--snapshot-keep`: none when the interval is off. */
function snapshotOptions(intervalName: string, interval: string, keepName: string, keep: string) {
  const intervalS = duration(intervalName, interval);
  const n = int(keepName, keep, 1, 1000);
  return intervalS === undefined ? {} : { snapshots: { intervalS, keep: n } };
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

/** `--no-auth` is for throwaway runs: never with an address others can reach. */
function authFor(auth: boolean, host: string): boolean {
  if (!auth && !LOOPBACK.has(host)) {
    throw new UsageError(`--no-auth is refused with --host ${host}: without authentication, listen on loopback only`);
  }
  return auth;
}

/** TLS settings from files, or none; a certificate without its key (or the reverse) is refused. */
function tlsFrom(cert?: string, key?: string, clientCa?: string, port?: string) {
  if (!cert && !key) {
    if (clientCa) throw new UsageError("--tls-client-ca needs --tls-cert and --tls-key");
    return undefined;
  }
  if (!cert || !key) throw new UsageError("--tls-cert and --tls-key go together");
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (e) {
      throw new UsageError(`${flag} ${file}: ${e instanceof Error ? e.message : e}`);
    }
  };
  const pems = {
    cert: read(L.label("tls-cert"), cert),
    key: read(L.label("tls-key"), key),
    ...(clientCa ? { clientCa: read(L.label("tls-client-ca"), clientCa) } : {}),
  };
  checkTlsFiles(
    { flag: L.label("tls-cert"), file: cert, pem: pems.cert },
    { flag: L.label("tls-key"), file: key, pem: pems.key },
    clientCa && pems.clientCa ? { flag: L.label("tls-client-ca"), file: clientCa, pem: pems.clientCa } : undefined,
  );
  return { ...pems, mqttTlsPort: int(L.label("mqtt-tls-port"), port) };
}

/** The manager's identity on an external broker, as upstream names it. */
function managerCredentials(): { id: string; key: string } | undefined {
  const id = env("MANAGER_ENTITY_ID");
  const key = env("MANAGER_API_KEY");
  if (!id && !key) return undefined;
  if (!id || !key) throw new UsageError("MANAGER_ENTITY_ID and MANAGER_API_KEY must be set together");
  return { id, key };
}

/** A URL setting: refused at start, named by where it came from, unless it parses with one of these schemes. */
function urlSetting(flag: string, v: string | undefined, schemes: string[]): void {
  if (!v) return;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/[^/]/i.exec(v)?.[1]?.toLowerCase();
  if (!scheme || !schemes.includes(scheme))
    throw new UsageError(`${L.label(flag)} must be a ${schemes.map((x) => `${x}://`).join(" or ")} URL`);
}

/**
 * The embedded OCI proxy's identity on an external broker (upstream's names); without it the proxy logs in as the
 * manager, whose broker ACL must then allow the registry topics.
 */
function proxyCredentials(): { id: string; key: string } | undefined {
  const id = env("PROXY_ENTITY_ID");
  const key = env("PROXY_API_KEY");
  if (!id && !key) return undefined;
  if (!id || !key) throw new UsageError("PROXY_ENTITY_ID and PROXY_API_KEY must be set together");
  return { id, key };
}

const list = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** serve's OCI proxy: its registry client (credentials scoped to their hosts) and the site's allow-list. */
function proxyOptions(args: Record<string, unknown>) {
  const text = (k: string) => (typeof args[k] === "string" ? (args[k] as string) : undefined);
  const p = proxySettings((flag) => L.label(flag), {
    allow: text("registry-allow"),
    authHosts: text("registry-auth-hosts"),
    maxModuleMb: text("max-module-mb"),
  });
  return { registry: registryFromEnv(text("data-dir"), {}, p), chunkSize: chunkSizeFromEnv(), allowed: p.allowed };
}

/** The trust policy and registries.d, read and checked before anything starts; a bad one is a usage error. */
async function trustFrom(path: string, registriesD: string, registry: RegistryClient): Promise<TrustVerifier> {
  try {
    return await TrustVerifier.load(path, registriesD, registry);
  } catch (e) {
    if (e instanceof TrustConfigError) throw new UsageError(`${L.label("trust-policy")}: ${e.message}`);
    throw e;
  }
}

/** --allowed-origins: each `scheme://host[:port]`, canonical; anything else is a usage error naming it. */
function origins(label: string, v: string | undefined): string[] {
  return list(v).map((text) => {
    const o = parseOrigin(text);
    if (!o) {
      throw new UsageError(
        `${label}: ${JSON.stringify(text)} is not an origin: give scheme://host[:port], e.g. http://localhost:3000`,
      );
    }
    return o;
  });
}

/** The embedded broker's bounds (src/broker/limits.ts) from their flags. */
function brokerLimits(args: Record<string, unknown>) {
  const n = (name: string, min: number, max: number) => int(L.label(name), args[name] as string, min, max);
  const loopback = n("mqtt-loopback-max-connections", 1, 1_000_000);
  return {
    maxPacketBytes: packetBytesFor(n("mqtt-max-message-mb", 1, 256)),
    perAddress: {
      max: n("mqtt-max-connections-per-address", 1, 1_000_000),
      perSecond: n("mqtt-connection-rate", 1, 1_000_000),
    },
    loopback: { max: loopback, perSecond: loopback },
  };
}

/** Where each setting came from; made when citty reads the arguments. */
let L: Layers;

/** What `serve`'s run hands its checked options to: serve itself, or for `config show` nothing. */
let start: typeof serve = serve;

/**
 * serve's settings and their sources for `config show`, checked by serve's own run (one path: what serve refuses,
 * config show refuses, with the same message and exit code), which stops before anything starts.
 */
export async function serveSettings(): Promise<Layers> {
  const args = defaultsOf((serveCommand.args as () => Record<string, { default?: unknown }>)());
  start = async () => ({ httpPort: 0, reloadTls: () => {}, close: async () => {} });
  await (serveCommand.run as (ctx: { args: unknown }) => Promise<void>)({ args });
  return L;
}

/** The settings as they read now (flags, environment, config file), unchecked: SIGHUP compares them (reload.ts). */
function freshSettings(): Layers {
  (serveCommand.args as () => unknown)();
  return L;
}

export const serveCommand = defineCommand({
  meta: {
    name: "serve",
    description: "Run the control plane: MQTT broker, manager REST API, storage, console and a local proplet",
  },
  args: () => {
    L = new Layers("serve", process.argv.slice(2));
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
          "containers-policy.json: only modules it accepts run (signedBy GPG keys, reject, insecureAcceptAnything); checked at task creation, dispatch, the proxy and the proplet (env PROPELLER_TRUST_POLICY)",
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
        description:
          "tasks the local proplet runs at once (env PROPELLER_LOCAL_MAX_TASKS); default twice the CPU count",
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
        description:
          "event and log streams one token may hold open (env PROPELLER_MAX_STREAMS_PER_TOKEN); more get 429",
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
    };
  },
  run: ({ args }) =>
    action(
      async () => {
        L.check();
        privateUmask();
        const interval = seconds(
          L.label("liveliness-interval"),
          args["liveliness-interval"],
          10,
          MAX_LIVELINESS_INTERVAL_S,
        );
        const scheduler = args.scheduler as SchedulerName;
        if (!SCHEDULERS.includes(scheduler))
          throw new UsageError(
            `${L.label("scheduler")} must be one of ${SCHEDULERS.join(", ")}, got ${JSON.stringify(args.scheduler)}`,
          );
        // An empty data dir would be the working directory's "" (mkdir ENOENT): refused, naming where it was set.
        if (!args["data-dir"]?.trim())
          throw new UsageError(`${L.label("data-dir")} is empty: give a directory (default ${defaultDataDir()})`);
        const storage = args.storage as StorageKind;
        if (!(storage in STORAGE_HELP))
          throw new UsageError(
            `${L.label("storage")} must be one of ${Object.keys(STORAGE_HELP).join(", ")}, got ${JSON.stringify(args.storage)}`,
          );
        if (storage === "postgres" && !args["postgres-url"])
          throw new UsageError(`${L.label("storage")} postgres needs --postgres-url (env PROPELLER_DB_URL)`);
        urlSetting("postgres-url", args["postgres-url"], ["postgres", "postgresql"]);
        urlSetting("mqtt-url", args["mqtt-url"], ["mqtt", "mqtts", "tcp", "tls", "ssl", "ws", "wss"]);
        urlSetting("advertise-url", args["advertise-url"], ["http", "https"]);
        // systemd (Type=notify): READY=1 once serving, as active manager or stand-by; WATCHDOG=1 meanwhile.
        const systemd = new ServiceNotifier();
        systemd.startWatchdog();
        // SIGHUP reloads what can change live (cli/reload.ts); before serve runs, the log settings only.
        const reloading: ReloadTarget = { started: L, flags: args };
        process.on("SIGHUP", () => void reload(reloading, freshSettings));
        const proxy = args.proxy ? proxyOptions(args) : undefined;
        const trust = args["trust-policy"]
          ? await trustFrom(args["trust-policy"], args["registries-d"], proxy?.registry ?? proxyOptions(args).registry)
          : undefined;
        const s = await start({
          ...(trust ? { trust } : {}),
          onStandby: (reloadTls) => {
            if (args["tls-cert"]) reloading.reloadTls = reloadTls;
            void systemd.ready("stand-by: another manager of the site is active");
          },
          storage,
          postgresUrl: args["postgres-url"] || undefined,
          advertiseUrl: args["advertise-url"] || undefined,
          host: args.host,
          httpPort: int(L.label("http-port"), args["http-port"]),
          mqttPort: int(L.label("mqtt-port"), args["mqtt-port"]),
          dataDir: args["data-dir"],
          mqttUrl: args["mqtt-url"] || undefined,
          localProplet: args["local-proplet"],
          auth: authFor(args.auth, args.host),
          tls: tlsFrom(args["tls-cert"], args["tls-key"], args["tls-client-ca"], args["mqtt-tls-port"]),
          allowedOrigins: origins(L.label("allowed-origins"), args["allowed-origins"]),
          brokerLimits: brokerLimits(args),
          managerCredentials: managerCredentials(),
          proxyCredentials: proxyCredentials(),
          domainId: args["domain-id"],
          channelId: args["channel-id"],
          livelinessInterval: interval,
          livelinessThreshold: seconds(L.label("liveliness-threshold"), args["liveliness-threshold"], interval * 3),
          scheduler,
          localMaxTasks: int(L.label("local-max-tasks"), args["local-max-tasks"], 1, 10_000),
          trustPropletLabels: args["trust-proplet-labels"],
          maxModuleMb: int(L.label("max-module-mb"), args["max-module-mb"], 1, MAX_MODULE_MB_LIMIT),
          proxy,
          localPropletEnv: propletEnv(),
          staleRemovalS: int(L.label("stale-proplet-removal"), args["stale-proplet-removal"], 0, 10 * 365 * 86400),
          partitionGraceS: int(L.label("partition-grace"), args["partition-grace"], 0, 7 * 86400),
          loginLinkTtlS: int(L.label("login-link-ttl"), args["login-link-ttl"], 1, 86400),
          apiLimits: {
            largeBodyBytes: int(L.label("max-body-mb"), args["max-body-mb"], 1, 4096) * 1024 * 1024,
            streams: {
              ...DEFAULT_STREAM_LIMITS,
              total: int(L.label("max-streams"), args["max-streams"], 1, 100_000),
              perToken: int(L.label("max-streams-per-token"), args["max-streams-per-token"], 1, 100_000),
            },
          },
          ...snapshotOptions(
            L.label("snapshot-interval"),
            args["snapshot-interval"],
            L.label("snapshot-keep"),
            args["snapshot-keep"],
          ),
        });
        if (s.reloadTls && args["tls-cert"]) reloading.reloadTls = (tls) => s.reloadTls(tls);
        await systemd.ready(`serving on port ${s.httpPort}`);
        const shutdown = async (sig: string) => {
          log.info(`${sig}: shutting down`);
          await systemd.stopping();
          // Bounded: a stuck connection must not keep the process from exiting.
          const t0 = Date.now();
          const done = await Promise.race([s.close().then(() => true), Bun.sleep(5000).then(() => false)]);
          if (done) log.info(`stopped (${Date.now() - t0} ms)`);
          else log.warn("stopped: not everything had closed after 5 s (the data dir's lock is released on exit)");
          process.exit(0);
        };
        process.once("SIGINT", () => void shutdown("SIGINT"));
        process.once("SIGTERM", () => void shutdown("SIGTERM"));
      },
      args["log-level"],
      args["log-format"],
    ),
});
