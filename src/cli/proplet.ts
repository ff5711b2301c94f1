import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import type { ConfigSection } from "../core/provision.ts";
import { log } from "../log.ts";
import { PropletAgent } from "../proplet/agent.ts";
import { defaultMaxTasks } from "../proplet/config.ts";
import { lockDir } from "../storage/lock.ts";
import { configureTracing } from "../telemetry/tracing.ts";
import { action, defaultDataDir, env, logArgs, UsageError } from "./args.ts";
import { ownDataDir, privateUmask } from "./data-dir.ts";
import { warnUnknownEnv } from "./env-check.ts";
import { IdleRelease, releaseMemory } from "./idle-release.ts";
import { type JoinedIdentity, joinedCa, joinSite, readJoined, tokenHash } from "./join.ts";
import { defaultsOf, Layers, SYSTEM_CONFIG } from "./layers.ts";
import { checkPortsFree } from "./ports.ts";
import { type PropletArgs, propletDataDir, propletTrust, settingsOf, withCa } from "./proplet-settings.ts";
import { reload } from "./reload.ts";
import { ServiceNotifier } from "./systemd.ts";

// `propeller proplet`: its flags, a join, the state dir it locks, the agent's start and stop. Its settings are
// read and checked in proplet-settings.ts.

/** The id kept in the state dir, made on the first start. */
function storedId(dir: string): string {
  const file = join(dir, "proplet-id");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const id = crypto.randomUUID();
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

/** Where each setting came from; made when citty reads the arguments. */
let L: Layers;

/** The proplet's settings and their sources, checked as `propeller proplet` checks them (for `config show`). */
export function propletSettings(): Layers {
  const args = defaultsOf((propletCommand.args as () => Record<string, { default?: unknown }>)()) as PropletArgs;
  const { fromFile, file, section } = settingsOf(L, args);
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

export const propletCommand = defineCommand({
  meta: {
    name: "proplet",
    description:
      "Run a worker that executes Wasm tasks sent by a manager over MQTT (env PROPLET_DATA_DIR: its state dir, one process each: identity, undelivered results, the run record that answers a start sent again after a restart; default <data dir>/proplet, or <data dir>/proplet-ID with an id; PROPLET_MAX_TASK_DISK_MB: the largest a task's file may grow to, and the most its files may grow by, default 64; PROPLET_FL_URL: the gateway's FL URL, the one origin besides the proplet's own FL URLs that is sent its key; PROPLET_TRUST_POLICY: a containers-policy.json of its own that every module must pass, signatures found through PROPLET_REGISTRIES_D, default /etc/containers/registries.d; SIGHUP reads them again)",
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
        if (args.join) joined = await joinOnce(args.join, args.token!, joinDir, joined);
        const { config, id: given, file, section } = settingsOf(L, args as unknown as PropletArgs, joined);
        warnUnknownEnv();
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
        // Memory back after a burst of tasks, as serve gives it (idle-release.ts): this process has no store, so
        // the JS heap and, after a large burst, compiled code. Nothing runs while no task ends.
        const idle = new IdleRelease((deep) => releaseMemory({}, deep));
        agent.onTaskEnded(() => idle.activity());
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
        // SIGHUP: the log settings from the environment and config file again (cli/reload.ts), and the trust
        // policy's files (a bad one keeps the running policy).
        process.on("SIGHUP", () => {
          reload({ started: L, flags: args }, propletSettings);
          if (trust) void trust.reload();
        });
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

/**
 * --join with a token: the token a kept identity came from needs no join (a service started with --join in its
 * command line); another token joins again, replacing it (a revoked proplet given a new token kept its revoked
 * identity and was refused forever). A refused join keeps an identity joined before, saying so: its unit may
 * still carry a spent single-use token from before tokens were remembered.
 */
async function joinOnce(url: string, token: string, dir: string, kept: JoinedIdentity | undefined) {
  if (kept && kept.token_sha256 === tokenHash(token)) {
    log.info(`already joined as ${kept.entity_id} with this token (${dir}): --join is not needed`);
    return kept;
  }
  try {
    const joined = await joinSite(url, token, dir);
    if (kept) log.warn(`joined again with a new token: ${kept.entity_id}'s identity in ${dir} is replaced`);
    return joined;
  } catch (e) {
    if (!kept) throw e;
    log.warn(`${e instanceof Error ? e.message : e}: keeping the identity joined before (${kept.entity_id}, ${dir})`);
    return kept;
  }
}
