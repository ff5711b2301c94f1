import { readFileSync } from "node:fs";
import { packetBytesFor } from "../broker/limits.ts";
import { MAX_MODULE_MB_LIMIT } from "../core/module-size.ts";
import { parseOrigin } from "../core/origins.ts";
import { MAX_LIVELINESS_INTERVAL_S } from "../core/proplet.ts";
import { SCHEDULERS, type SchedulerName } from "../core/scheduler.ts";
import { log } from "../log.ts";
import { DEFAULT_STREAM_LIMITS } from "../manager/api/streams.ts";
import type { RegistryClient } from "../proxy/registry.ts";
import { TrustConfigError } from "../proxy/trust.ts";
import { ReloadableTrust } from "../proxy/trust-reload.ts";
import { STORAGE_HELP } from "../storage/open.ts";
import type { StorageKind } from "../storage/repository.ts";
import { defaultDataDir, duration, env, int, seconds, UsageError } from "./args.ts";
import type { Layers } from "./layers.ts";
import { propletEnv } from "./proplet-settings.ts";
import { chunkSizeFromEnv, proxySettings, registryFromEnv } from "./proxy.ts";
import type { ServeArgs } from "./serve-flags.ts";
import type { ServeOptions } from "./site-options.ts";
import { checkTlsFiles } from "./tls-files.ts";

// The checks that turn serve's flags (serve-flags.ts) into ServeOptions (site-options.ts): each refusal names the setting
// where it was set (L.label: flag, environment or config file). Apart from serve.ts so that serve's run and
// `config show` share them (one path) while the run itself stays about starting and stopping.

/**
 * `--snapshot-interval` and `--snapshot-keep`: none when the interval is off. A bare number needs its unit here:
 * `--snapshot-interval 6`, meant as hours, wrote the whole store every 6 s. A keep with no interval is said.
 */
function snapshotOptions(intervalName: string, interval: string, keepName: string, keep: string) {
  const t = interval.trim();
  if (/^\d+(\.\d+)?$/.test(t) && t !== "0")
    throw new UsageError(`${intervalName} ${t}: give its unit (${t}s, ${t}m, ${t}h or ${t}d), or off`);
  const intervalS = duration(intervalName, interval);
  const n = int(keepName, keep, 1, 1000);
  if (intervalS === undefined && keep !== "7")
    log.warn(`${keepName} ${keep} takes effect with ${intervalName}, which is off: no snapshots are written`);
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
function tlsFrom(L: Layers, cert?: string, key?: string, clientCa?: string, port?: string) {
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

/**
 * The manager's identity on an external broker, as upstream names it: MANAGER_ENTITY_ID and MANAGER_API_KEY, else
 * `[manager]` of serve's config file (what `provision` writes; the section was accepted and ignored).
 */
function managerCredentials(L: Layers): { id: string; key: string } | undefined {
  const id = env("MANAGER_ENTITY_ID");
  const key = env("MANAGER_API_KEY");
  if (!id && !key) return L.identity("manager");
  if (!id || !key) throw new UsageError("MANAGER_ENTITY_ID and MANAGER_API_KEY must be set together");
  return { id, key };
}

/** A URL setting: refused at start, named by where it came from, unless it parses with one of these schemes. */
function urlSetting(L: Layers, flag: string, v: string | undefined, schemes: string[]): void {
  if (!v) return;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/[^/]/i.exec(v)?.[1]?.toLowerCase();
  if (!scheme || !schemes.includes(scheme))
    throw new UsageError(`${L.label(flag)} must be a ${schemes.map((x) => `${x}://`).join(" or ")} URL`);
}

/**
 * The embedded OCI proxy's identity on an external broker (upstream's names); without it the proxy logs in as the
 * manager, whose broker ACL must then allow the registry topics.
 */
function proxyCredentials(L: Layers): { id: string; key: string } | undefined {
  const id = env("PROXY_ENTITY_ID");
  const key = env("PROXY_API_KEY");
  if (!id && !key) return L.identity("proxy");
  if (!id || !key) throw new UsageError("PROXY_ENTITY_ID and PROXY_API_KEY must be set together");
  return { id, key };
}

const list = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** serve's OCI proxy: its registry client (credentials scoped to their hosts) and the site's allow-list. */
function proxyOptions(L: Layers, args: Record<string, unknown>) {
  const text = (k: string) => (typeof args[k] === "string" ? (args[k] as string) : undefined);
  const p = proxySettings((flag) => L.label(flag), {
    allow: text("registry-allow"),
    authHosts: text("registry-auth-hosts"),
    maxModuleMb: text("max-module-mb"),
  });
  return { registry: registryFromEnv(text("data-dir"), {}, p), chunkSize: chunkSizeFromEnv(), allowed: p.allowed };
}

/** The trust policy and registries.d, read and checked before anything starts (a bad one is a usage error); SIGHUP reads them again. */
async function trustFrom(
  L: Layers,
  path: string,
  registriesD: string,
  registry: RegistryClient,
): Promise<ReloadableTrust> {
  try {
    return await ReloadableTrust.load(path, registriesD, registry);
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
function brokerLimits(L: Layers, args: Record<string, unknown>) {
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

/** The checks made before serve hooks into systemd and SIGHUP (their order is the order errors are reported in). */
export function checkSettings(L: Layers, args: ServeArgs) {
  const interval = seconds(L.label("liveliness-interval"), args["liveliness-interval"], 10, MAX_LIVELINESS_INTERVAL_S);
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
  urlSetting(L, "postgres-url", args["postgres-url"], ["postgres", "postgresql"]);
  urlSetting(L, "mqtt-url", args["mqtt-url"], ["mqtt", "mqtts", "tcp", "tls", "ssl", "ws", "wss"]);
  urlSetting(L, "advertise-url", args["advertise-url"], ["http", "https"]);
  // PostgreSQL's address given to another storage: said, not silently dropped.
  if (storage !== "postgres" && args["postgres-url"])
    log.warn(`${L.label("postgres-url")} is for --storage postgres; with ${storage} it is not used`);
  return { interval, scheduler, storage };
}

/** The rest of serve's options, checked in this order; `checked` is what checkSettings returned. */
export async function serveOptions(
  L: Layers,
  args: ServeArgs,
  { interval, scheduler, storage }: ReturnType<typeof checkSettings>,
): Promise<Omit<ServeOptions, "onStandby">> {
  const proxy = args.proxy ? proxyOptions(L, args) : undefined;
  const trust = args["trust-policy"]
    ? await trustFrom(L, args["trust-policy"], args["registries-d"], proxy?.registry ?? proxyOptions(L, args).registry)
    : undefined;
  return {
    ...(trust ? { trust } : {}),
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
    tls: tlsFrom(L, args["tls-cert"], args["tls-key"], args["tls-client-ca"], args["mqtt-tls-port"]),
    allowedOrigins: origins(L.label("allowed-origins"), args["allowed-origins"]),
    brokerLimits: brokerLimits(L, args),
    managerCredentials: managerCredentials(L),
    proxyCredentials: proxyCredentials(L),
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
  };
}
