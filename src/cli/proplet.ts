import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { MAX_LIVELINESS_INTERVAL_S } from "../core/proplet.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { log } from "../log.ts";
import { PropletAgent } from "../proplet/agent.ts";
import { defaultMaxTasks, type PropletConfig } from "../proplet/config.ts";
import { lockDir } from "../storage/lock.ts";
import { configureTracing } from "../telemetry/tracing.ts";
import { action, defaultDataDir, env, int, logArgs, seconds, UsageError } from "./args.ts";
import { Layers, SYSTEM_CONFIG } from "./layers.ts";
import { configSection } from "./provision.ts";
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

export type LocalEnv = Pick<
  PropletConfig,
  "fetchTimeoutMs" | "metricsInterval" | "cgroupRoot" | "allowedDirs" | "maxTaskMemoryMb"
>;

/** Proplet settings only the environment sets; serve's local proplet reads the same ones. */
export function propletEnv(): LocalEnv {
  const metrics = env("PROPLET_METRICS_INTERVAL");
  const memory = env("PROPLET_MAX_TASK_MEMORY_MB");
  return {
    ...(memory ? { maxTaskMemoryMb: int("PROPLET_MAX_TASK_MEMORY_MB", memory, 1, 4096) } : {}),
    allowedDirs: (env("PROPLET_DIRS") ?? "").split(":").filter(Boolean),
    fetchTimeoutMs: seconds("PROPLET_FETCH_TIMEOUT", env("PROPLET_FETCH_TIMEOUT"), 60) * 1000,
    metricsInterval: metrics === "0" ? 0 : seconds("PROPLET_METRICS_INTERVAL", metrics, 10),
    cgroupRoot: env("PROPLET_CGROUP_ROOT"),
  };
}

/** Where each setting came from; made when citty reads the arguments. */
let L: Layers;

/** The proplet's settings and their sources, as `propeller proplet` would see them (for `config show`). */
export function propletSettings(): Layers {
  (propletCommand.args as () => unknown)();
  return L;
}

export const propletCommand = defineCommand({
  meta: { name: "proplet", description: "Run a worker that executes Wasm tasks sent by a manager over MQTT" },
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
      ...logArgs(L),
    };
  },
  run: ({ args }) =>
    action(
      async () => {
        L.check();
        // As upstream's proplet: an incomplete environment is filled in from a config.toml section.
        const given = {
          entity_id: args["entity-id"],
          api_key: args["api-key"],
          tenant_id: args["domain-id"],
          channel_id: args["channel-id"],
        };
        const file = env("PROPLET_CONFIG_FILE") ?? "config.toml";
        const section = env("PROPLET_CONFIG_SECTION") ?? "proplet";
        const fromFile = Object.values(given).some((v) => !v) ? configSection(file, section) : {};
        let id = given.entity_id || fromFile.entity_id;
        if (!given.entity_id && fromFile.entity_id)
          log.info(`identity ${fromFile.entity_id} from [${section}] of ${file}`);
        // The state dir, which this process alone may hold: with no id given, the proplet keeps the one it made
        // there (a restart under a supervisor is the same proplet, not a new twin); results wait there while the
        // link is down.
        const dir =
          env("PROPLET_DATA_DIR") ??
          join(defaultDataDir(), id ? `proplet-${id.replace(/[^A-Za-z0-9._-]/g, "_")}` : "proplet");
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const state = lockDir(dir, "proplet");
        id ||= storedId(dir);
        const agent = new PropletAgent({
          mqttAddress: args["mqtt-address"],
          entityId: id,
          stateDir: dir,
          keepalive: env("PROPLET_MQTT_KEEPALIVE")
            ? int("PROPLET_MQTT_KEEPALIVE", env("PROPLET_MQTT_KEEPALIVE"), 1, 3600)
            : undefined,
          apiKey: given.api_key || fromFile.api_key || "",
          domainId: given.tenant_id || fromFile.tenant_id || DEFAULT_DOMAIN_ID,
          channelId: given.channel_id || fromFile.channel_id || DEFAULT_CHANNEL_ID,
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
          description: args.description,
          tags: args.tags
            ?.split(",")
            .map((t) => t.trim())
            .filter(Boolean),
          location: args.location,
          teeRoot: env("PROPLET_TEE_ROOT"),
          decryptionKeys: env("PROPLET_DECRYPTION_KEYS"),
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
