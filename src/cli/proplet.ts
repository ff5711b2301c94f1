import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { MAX_MODULE_MB_LIMIT } from "../core/module-size.ts";
import { MAX_LIVELINESS_INTERVAL_S } from "../core/proplet.ts";
import type { ConfigSection } from "../core/provision.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { log } from "../log.ts";
import { PropletAgent } from "../proplet/agent.ts";
import { defaultMaxTasks, type PropletConfig } from "../proplet/config.ts";
import { DEFAULT_REGISTRIES_D, TrustConfigError, TrustVerifier } from "../proxy/trust.ts";
import { lockDir } from "../storage/lock.ts";
import { configureTracing } from "../telemetry/tracing.ts";
import { action, defaultDataDir, env, int, logArgs, nearest, seconds, UsageError } from "./args.ts";
import { ownDataDir, privateUmask } from "./data-dir.ts";
import { type JoinedIdentity, joinedCa, joinSite, readJoined } from "./join.ts";
import { defaultsOf, Layers, SYSTEM_CONFIG, sectionProblems } from "./layers.ts";
import { checkPortsFree } from "./ports.ts";
import { configFile } from "./provision.ts";
import { registryFromEnv } from "./proxy.ts";
import { reload } from "./reload.ts";
import { ServiceNotifier } from "./systemd.ts";

function runtime(v: string): "inprocess" | "host" {
  if (v !== "inprocess" && v !== "host")
    throw new UsageError(`--runtime must be inprocess or host, got ${JSON.stringify(v)}`);
  return v;
}

/** The id kept in the state dir, made on the first start. */
function storedId(dir: string): string {
  const file = join(dir, "proplet-id");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const id = crypto.randomUUID();
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/** Upstream's TLS variables: files for the CA and a client certificate, and a switch for tests. */
function tlsEnv(): PropletConfig["tls"] {
  const file = (name: string) => {
    const path = env(name);
    if (!path) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new UsageError(`${name} ${path}: ${e instanceof Error ? e.message : e}`);
    }
  };
  const ca = file("PROPLET_MQTT_TLS_CA_CERT");
  const cert = file("PROPLET_MQTT_TLS_CLIENT_CERT");
  const key = file("PROPLET_MQTT_TLS_CLIENT_KEY");
  if (!!cert !== !!key)
    throw new UsageError("PROPLET_MQTT_TLS_CLIENT_CERT and PROPLET_MQTT_TLS_CLIENT_KEY go together");
  const insecure = env("PROPLET_MQTT_TLS_INSECURE_SKIP_VERIFY") === "true";
  if (!ca && !cert && !insecure) return undefined;
  if (insecure) log.warn("PROPLET_MQTT_TLS_INSECURE_SKIP_VERIFY=true: the broker's certificate is not checked");
  return { ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}), rejectUnauthorized: !insecure };
}

/** The CA a join kept, unless PROPLET_MQTT_TLS_CA_CERT names another. */
function withCa(tls: PropletConfig["tls"], ca: string | undefined): PropletConfig["tls"] {
  if (!ca || tls?.ca) return tls;
  return { ...(tls ?? {}), ca, rejectUnauthorized: tls?.rejectUnauthorized ?? true };
}

export type LocalEnv = Pick<
  PropletConfig,
  "fetchTimeoutMs" | "metricsInterval" | "cgroupRoot" | "allowedDirs" | "maxTaskMemoryMb" | "maxModuleMb"
>;

/** Proplet settings only the environment sets; serve's local proplet reads the same ones. */
export function propletEnv(): LocalEnv {
  const metrics = env("PROPLET_METRICS_INTERVAL");
  const memory = env("PROPLET_MAX_TASK_MEMORY_MB");
  const disk = env("PROPLET_MAX_TASK_DISK_MB");
  const moduleMb = env("PROPLET_MAX_MODULE_MB");
  return {
    ...(memory ? { maxTaskMemoryMb: int("PROPLET_MAX_TASK_MEMORY_MB", memory, 1, 4096) } : {}),
    ...(disk ? { maxTaskDiskMb: int("PROPLET_MAX_TASK_DISK_MB", disk, 1, 1 << 20) } : {}),
    ...(moduleMb ? { maxModuleMb: int("PROPLET_MAX_MODULE_MB", moduleMb, 1, MAX_MODULE_MB_LIMIT) } : {}),
    allowedDirs: (env("PROPLET_DIRS") ?? "").split(":").filter(Boolean),
    fetchTimeoutMs: seconds("PROPLET_FETCH_TIMEOUT", env("PROPLET_FETCH_TIMEOUT"), 60) * 1000,
    metricsInterval: metrics === "0" ? 0 : seconds("PROPLET_METRICS_INTERVAL", metrics, 10),
    cgroupRoot: env("PROPLET_CGROUP_ROOT"),
  };
}

/**
 * PROPLET_TRUST_POLICY (and PROPLET_REGISTRIES_D): the proplet's own policy, read before it connects; a bad one
 * stops it with the reason. It resolves an image's manifest through its own registry client.
 */
async function propletTrust(): Promise<TrustVerifier | undefined> {
  const path = env("PROPLET_TRUST_POLICY");
  if (!path) return undefined;
  try {
    return await TrustVerifier.load(
      path,
      env("PROPLET_REGISTRIES_D") ?? DEFAULT_REGISTRIES_D,
      registryFromEnv(undefined, {}, { authHosts: [] }),
    );
  } catch (e) {
    if (e instanceof TrustConfigError) throw new UsageError(`PROPLET_TRUST_POLICY: ${e.message}`);
    throw e;
  }
}

/** PROPLET_FL_URL: the gateway's FL URL (an http(s) URL), the one origin besides the proplet's own FL URLs that gets its key. */
function flUrlEnv(): string | undefined {
  const v = env("PROPLET_FL_URL");
  if (v === undefined) return undefined;
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {}
  if (!u || (u.protocol !== "http:" && u.protocol !== "https:"))
    throw new UsageError(`PROPLET_FL_URL must be an http(s) URL, got ${JSON.stringify(v)}`);
  return v.replace(/\/+$/, "");
}

/** Where each setting came from; made when citty reads the arguments. */
let L: Layers;

/** The proplet's settings and their sources, checked as `propeller proplet` checks them (for `config show`). */
export function propletSettings(): Layers {
  const args = defaultsOf((propletCommand.args as () => Record<string, { default?: unknown }>)()) as PropletArgs;
  const { fromFile, file, section } = settingsOf(args);
  // What the config section fills in shows as coming from there, as the proplet will use it.
  const filled = {
    "entity-id": "entity_id",
    "api-key": "api_key",
    "domain-id": "tenant_id",
    "channel-id": "channel_id",
  };
  for (const [flag, key] of Object.entries(filled)) {
    const v = fromFile[key as keyof ConfigSection];
    if (!args[flag as keyof PropletArgs] && v)
      L.resolved.set(flag, { value: v, source: `${file} [${section}] (${key})`, secret: flag === "api-key" });
  }
  const id = args["entity-id"] || fromFile.entity_id;
  const given = env("PROPLET_DATA_DIR");
  L.resolved.set("data-dir", {
    value: propletDataDir(id),
    source: given ? "env PROPLET_DATA_DIR" : "default",
    secret: false,
  });
  return L;
}

/** The proplet's state dir: PROPLET_DATA_DIR, else one per identity under serve's default data dir. */
function propletDataDir(id: string | undefined): string {
  return (
    env("PROPLET_DATA_DIR") ?? join(defaultDataDir(), id ? `proplet-${id.replace(/[^A-Za-z0-9._-]/g, "_")}` : "proplet")
  );
}

type PropletArgs = Record<
  "mqtt-address" | "entity-id" | "api-key" | "domain-id" | "channel-id" | "liveliness-interval" | "runtime",
  string
> &
  Partial<Record<"max-tasks" | "description" | "tags" | "location", string>>;

/** The keys a section named by PROPLET_CONFIG_SECTION may hold: provision's identity keys and [proplet]'s settings. */
const IDENTITY_KEYS = ["tenant_id", "entity_id", "api_key", "channel_id"];

/**
 * As upstream's proplet: an incomplete environment is filled in from a config.toml section (PROPLET_CONFIG_FILE,
 * default ./config.toml; PROPLET_CONFIG_SECTION, default proplet). A file or section named in the environment
 * must exist, and the section may hold only keys a proplet reads: a wrong name is refused at start, not left to
 * a proplet with an invented id looping on "Not authorized".
 */
function identityFrom(needed: boolean): { values: Partial<ConfigSection>; file: string; section: string } {
  const namedFile = env("PROPLET_CONFIG_FILE");
  const namedSection = env("PROPLET_CONFIG_SECTION");
  const file = namedFile ?? "config.toml";
  const section = namedSection ?? "proplet";
  if (!needed && !namedFile && !namedSection) return { values: {}, file, section };
  if (!existsSync(file)) {
    if (namedFile) throw new UsageError(`PROPLET_CONFIG_FILE ${file}: no such file`);
    if (namedSection)
      throw new UsageError(
        `PROPLET_CONFIG_SECTION ${section}: no ${file} to read it from (set PROPLET_CONFIG_FILE to the file provision wrote)`,
      );
    return { values: {}, file, section };
  }
  const all = configFile(file);
  const problems = sectionProblems(all, file);
  const s = all[section];
  if (s === undefined) {
    if (namedFile || namedSection) {
      const there = Object.keys(all).filter((k) => typeof all[k] === "object");
      const near = nearest(section, there);
      problems.push(
        `no section [${section}] in ${file} (PROPLET_CONFIG_SECTION${namedSection ? "" : " unset: default proplet"})${near ? `; did you mean [${near}]?` : ""}; sections: ${there.map((t) => `[${t}]`).join(", ") || "none"}`,
      );
    }
  } else if (typeof s === "object" && s !== null) {
    const known = [...IDENTITY_KEYS, ...L.knownKeys()];
    for (const [k, v] of Object.entries(s)) {
      if (k === "data_dir") {
        // serve's [serve] data_dir has no [proplet] twin: the state dir is chosen before the file is read.
        problems.push(
          `unknown key data_dir in [${section}] of ${file}: a proplet's data dir is set by the env var PROPLET_DATA_DIR`,
        );
      } else if (!known.includes(k)) {
        const near = nearest(k, known);
        problems.push(`unknown key ${k} in [${section}] of ${file}${near ? ` (did you mean ${near}?)` : ""}`);
      } else if (IDENTITY_KEYS.includes(k) && typeof v !== "string") {
        problems.push(`${k} in [${section}] of ${file}: expected a string`);
      }
    }
  }
  if (problems.length) throw new UsageError(problems.join("; "));
  return { values: (s ?? {}) as Partial<ConfigSection>, file, section };
}

/**
 * Every setting of a proplet checked, as `propeller proplet` starts and as `config show --proplet` shows them (one
 * path): the agent's options but its id and state dir, and the id from the config file when it gave one.
 */
function settingsOf(
  args: PropletArgs,
  joined?: JoinedIdentity,
): {
  config: Omit<PropletConfig, "entityId" | "stateDir">;
  id: string | undefined;
  fromFile: Partial<ConfigSection>;
  file: string;
  section: string;
} {
  L.check();
  const given = {
    entity_id: args["entity-id"],
    api_key: args["api-key"],
    tenant_id: args["domain-id"],
    channel_id: args["channel-id"],
  };
  const { values: fromFile, file, section } = identityFrom(!joined && Object.values(given).some((v) => !v));
  const config: Omit<PropletConfig, "entityId" | "stateDir"> = {
    // A joined proplet connects where serve told it, unless an address is set.
    mqttAddress:
      joined && L.resolved.get("mqtt-address")?.source === "default" ? joined.mqtt_address : args["mqtt-address"],
    keepalive: env("PROPLET_MQTT_KEEPALIVE")
      ? int("PROPLET_MQTT_KEEPALIVE", env("PROPLET_MQTT_KEEPALIVE"), 1, 3600)
      : undefined,
    apiKey: given.api_key || joined?.api_key || fromFile.api_key || "",
    domainId: given.tenant_id || joined?.domain_id || fromFile.tenant_id || DEFAULT_DOMAIN_ID,
    channelId: given.channel_id || joined?.channel_id || fromFile.channel_id || DEFAULT_CHANNEL_ID,
    namespace: env("PROPLET_MANAGER_K8S_NAMESPACE") ?? "default",
    livelinessInterval: seconds(
      L.label("liveliness-interval"),
      args["liveliness-interval"],
      10,
      MAX_LIVELINESS_INTERVAL_S,
    ),
    maxTasks: int(L.label("max-tasks"), args["max-tasks"], 1, 10_000),
    ...propletEnv(),
    tls: tlsEnv(),
    runtime: runtime(args.runtime),
    metricsPort: env("PROPLET_METRICS_PORT")
      ? int("PROPLET_METRICS_PORT", env("PROPLET_METRICS_PORT"), 0, 65535)
      : undefined,
    externalRuntime: env("PROPLET_EXTERNAL_WASM_RUNTIME"),
    flUrl: flUrlEnv(),
    description: args.description,
    tags: args.tags
      ?.split(",")
      .map((t) => t.trim())
      .filter(Boolean),
    location: args.location,
    teeRoot: env("PROPLET_TEE_ROOT"),
    decryptionKeys: env("PROPLET_DECRYPTION_KEYS"),
  };
  return { config, id: given.entity_id || joined?.entity_id || fromFile.entity_id, fromFile, file, section };
}

export const propletCommand = defineCommand({
  meta: {
    name: "proplet",
    description:
      "Run a worker that executes Wasm tasks sent by a manager over MQTT (env PROPLET_MAX_TASK_DISK_MB: the largest a task's file may grow to, and the most its files may grow by, default 64; PROPLET_FL_URL: the gateway's FL URL, the one origin besides the proplet's own FL URLs that is sent its key; PROPLET_TRUST_POLICY: a containers-policy.json of its own that every module must pass, signatures found through PROPLET_REGISTRIES_D, default /etc/containers/registries.d)",
  },
  args: () => {
    L = new Layers("proplet", process.argv.slice(2), { tenant_id: "domain_id" });
    return {
      config: {
        type: "string",
        description: `settings file, section [proplet] (default ${SYSTEM_CONFIG} when present; env PROPELLER_CONFIG)`,
      },
      "mqtt-address": {
        type: "string",
        description: "broker address (env PROPLET_MQTT_ADDRESS)",
        default: L.text("mqtt-address", ["PROPLET_MQTT_ADDRESS"], "mqtt://localhost:1883"),
      },
      "entity-id": {
        type: "string",
        description:
          "this proplet's id, also its MQTT username (env PROPLET_ENTITY_ID); else from PROPLET_CONFIG_FILE, else kept in PROPLET_DATA_DIR",
        default: L.text("entity-id", ["PROPLET_ENTITY_ID"]),
      },
      "api-key": {
        type: "string",
        description: "MQTT password (env PROPLET_API_KEY); else from PROPLET_CONFIG_FILE",
        default: L.text("api-key", ["PROPLET_API_KEY"], undefined, true),
      },
      "domain-id": {
        type: "string",
        description: 'domain id (env PROPLET_DOMAIN_ID, alias PROPLET_TENANT_ID); default "default"',
        default: L.text("domain-id", ["PROPLET_DOMAIN_ID", "PROPLET_TENANT_ID"]),
      },
      "channel-id": {
        type: "string",
        description: 'channel id (env PROPLET_CHANNEL_ID); default "default"',
        default: L.text("channel-id", ["PROPLET_CHANNEL_ID"]),
      },
      "liveliness-interval": {
        type: "string",
        description: "seconds between heartbeats (env PROPLET_LIVELINESS_INTERVAL)",
        default: L.text("liveliness-interval", ["PROPLET_LIVELINESS_INTERVAL"], "10"),
      },
      runtime: {
        type: "string",
        description: "inprocess (worker threads) or host (a child process per task) (env PROPLET_RUNTIME)",
        default: L.text("runtime", ["PROPLET_RUNTIME"], "inprocess"),
      },
      "max-tasks": {
        type: "string",
        description: "tasks run at once, announced to the manager (env PROPLET_MAX_TASKS); default twice the CPU count",
        default: L.text("max-tasks", ["PROPLET_MAX_TASKS"], String(defaultMaxTasks())),
      },
      description: {
        type: "string",
        description: "discovery description (env PROPLET_DESCRIPTION)",
        default: L.text("description", ["PROPLET_DESCRIPTION"]),
      },
      tags: {
        type: "string",
        description: "comma-separated tags (env PROPLET_TAGS); key=value tags are labels tasks may require",
        default: L.text("tags", ["PROPLET_TAGS"]),
      },
      location: {
        type: "string",
        description: "discovery location (env PROPLET_LOCATION)",
        default: L.text("location", ["PROPLET_LOCATION"]),
      },
      join: {
        type: "string",
        description:
          "serve's URL: join the site with --token, once; the identity and CA are kept in PROPLET_DATA_DIR (env PROPLET_JOIN_URL)",
        default: L.text("join", ["PROPLET_JOIN_URL"]),
      },
      token: {
        type: "string",
        description: "a join token from `propeller proplets join-token`, with --join (env PROPLET_JOIN_TOKEN)",
        default: L.text("token", ["PROPLET_JOIN_TOKEN"], undefined, true),
      },
      ...logArgs(L),
    };
  },
  run: ({ args }) =>
    action(
      async () => {
        privateUmask();
        if (args.token && !args.join) throw new UsageError("--token goes with --join URL");
        if (args.join && !args.token) throw new UsageError("--join needs --token (`propeller proplets join-token`)");
        if (args.join && args["entity-id"])
          throw new UsageError("--join makes this proplet's identity: give no entity id");
        // A joined proplet's identity lives in its data dir (given, or the default one for no id): --join fetches it
        // once; later starts read it (join.ts).
        const joinDir = env("PROPLET_DATA_DIR") ?? join(defaultDataDir(), "proplet");
        let joined = args["entity-id"] ? undefined : readJoined(joinDir);
        if (args.join && joined) log.info(`already joined as ${joined.entity_id} (${joinDir}): --join is not needed`);
        else if (args.join) joined = await joinSite(args.join, args.token!, joinDir);
        const { config, id: given, file, section } = settingsOf(args as unknown as PropletArgs, joined);
        let id = given;
        if (id && !args["entity-id"] && !joined) log.info(`identity ${id} from [${section}] of ${file}`);
        // The state dir, which this process alone may hold: with no id given, the proplet keeps the one it made
        // there (a restart under a supervisor is the same proplet, not a new twin); results wait there while the
        // link is down.
        const dir = joined ? joinDir : propletDataDir(id);
        // Its metrics port, when it has one, is checked free before the state dir is made or locked.
        if (config.metricsPort)
          await checkPortsFree("127.0.0.1", [{ port: config.metricsPort, flag: "PROPLET_METRICS_PORT" }]);
        ownDataDir(dir, "PROPLET_DATA_DIR");
        const state = lockDir(dir, "proplet");
        id ||= storedId(dir);
        const ca = joined ? joinedCa(dir) : undefined;
        const trust = await propletTrust();
        const agent = new PropletAgent({
          ...config,
          ...(trust ? { trust } : {}),
          entityId: id,
          stateDir: dir,
          tls: withCa(config.tls, ca),
        });
        // Upstream's proplet reads PROPLET_OTEL_URL and PROPLET_TRACE_RATIO; the standard variable comes first.
        configureTracing(
          env("OTEL_EXPORTER_OTLP_ENDPOINT") ?? env("PROPLET_OTEL_URL"),
          env("OTEL_SERVICE_NAME") ?? "propeller-proplet",
          Number(env("PROPLET_TRACE_RATIO") ?? 1),
        );
        // systemd (Type=notify): READY=1 once on the broker; a proplet still waiting for its broker after 5 s is up
        // too (it joins whenever the broker comes), so a broker down at boot does not fail the unit's start.
        const systemd = new ServiceNotifier();
        systemd.startWatchdog();
        // SIGHUP: the log settings from the environment and config file again (cli/reload.ts).
        process.on("SIGHUP", () => void reload({ started: L, flags: args }, propletSettings));
        const waiting = setTimeout(() => void systemd.ready("waiting for the MQTT broker"), 5000);
        await agent.start();
        clearTimeout(waiting);
        await systemd.ready("on the MQTT broker");
        const shutdown = async (sig: string) => {
          log.info(`${sig}: proplet ${agent.id} going offline`);
          await systemd.stopping();
          await Promise.race([agent.close(), Bun.sleep(5000)]);
          state.release();
          process.exit(0);
        };
        process.once("SIGINT", () => void shutdown("SIGINT"));
        process.once("SIGTERM", () => void shutdown("SIGTERM"));
      },
      args["log-level"],
      args["log-format"],
    ),
});
