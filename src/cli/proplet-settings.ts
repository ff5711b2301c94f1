import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_MODULE_MB_LIMIT } from "../core/module-size.ts";
import { MAX_LIVELINESS_INTERVAL_S } from "../core/proplet.ts";
import type { ConfigSection } from "../core/provision.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { log } from "../log.ts";
import type { PropletConfig } from "../proplet/config.ts";
import { DEFAULT_REGISTRIES_D, TrustConfigError } from "../proxy/trust.ts";
import { ReloadableTrust } from "../proxy/trust-reload.ts";
import { defaultDataDir, env, int, nearest, seconds, UsageError } from "./args.ts";
import type { JoinedIdentity } from "./join.ts";
import { type Layers, sectionProblems } from "./layers.ts";
import { configFile } from "./provision.ts";
import { registryFromEnv } from "./proxy.ts";

// A proplet's settings: its flags checked, the variables only the environment sets (upstream's names), the
// identity an incomplete environment takes from a config.toml section, its TLS files and trust policy. Apart from
// the command (proplet.ts), which joins, locks its state dir and runs the agent: what a setting means changes here,
// how a proplet starts there, and serve (propletEnv for its local proplet) reads these without the command.

function runtime(v: string): "inprocess" | "host" {
  if (v !== "inprocess" && v !== "host")
    throw new UsageError(`--runtime must be inprocess or host, got ${JSON.stringify(v)}`);
  return v;
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
export function withCa(tls: PropletConfig["tls"], ca: string | undefined): PropletConfig["tls"] {
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
 * stops it with the reason. It resolves an image's manifest through its own registry client. SIGHUP reads the
 * same files again.
 */
export async function propletTrust(): Promise<ReloadableTrust | undefined> {
  const path = env("PROPLET_TRUST_POLICY");
  if (!path) return undefined;
  try {
    return await ReloadableTrust.load(
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

/** The proplet's state dir: PROPLET_DATA_DIR, else one per identity under serve's default data dir. */
export function propletDataDir(id: string | undefined): string {
  return (
    env("PROPLET_DATA_DIR") ?? join(defaultDataDir(), id ? `proplet-${id.replace(/[^A-Za-z0-9._-]/g, "_")}` : "proplet")
  );
}

export type PropletArgs = Record<
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
function identityFrom(L: Layers, needed: boolean): { values: Partial<ConfigSection>; file: string; section: string } {
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
      } else if (k === "trust_policy" || k === "registries_d") {
        problems.push(
          `unknown key ${k} in [${section}] of ${file}: a proplet reads it from the env var PROPLET_${k.toUpperCase()}`,
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
export function settingsOf(
  L: Layers,
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
  const { values: fromFile, file, section } = identityFrom(L, !joined && Object.values(given).some((v) => !v));
  const config: Omit<PropletConfig, "entityId" | "stateDir"> = {
    // A joined proplet connects where serve told it, unless an address is set.
    mqttAddress:
      joined && L.resolved.get("mqtt-address")?.source === "default" ? joined.mqtt_address : args["mqtt-address"],
    keepalive: keepaliveEnv(),
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
    // A joined proplet's gateway is the URL it joined (and took its identity from).
    flUrl: flUrlEnv() ?? (joined ? `${joined.url.replace(/\/+$/, "")}/fl` : undefined),
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

/** Seconds between MQTT pings: PROPLET_MQTT_KEEPALIVE, or upstream's PROPLET_MQTT_KEEP_ALIVE (an env file of its). */
function keepaliveEnv(): number | undefined {
  const name = ["PROPLET_MQTT_KEEPALIVE", "PROPLET_MQTT_KEEP_ALIVE"].find((n) => env(n));
  return name ? int(name, env(name), 1, 3600) : undefined;
}
