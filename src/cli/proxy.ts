import { defineCommand } from "citty";
import { connectMqtt } from "../broker/client.ts";
import { DEFAULT_CHUNK_SIZE } from "../core/oci.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { log } from "../log.ts";
import { RegistryClient } from "../proxy/registry.ts";
import { ProxyService } from "../proxy/service.ts";
import { action, defaultDataDir, env, int, logLevelArg } from "./args.ts";
import { configSection } from "./provision.ts";

/** Registry settings shared by serve's embedded proxy, `propeller proxy`, push and pull. */
export function registryFromEnv(
  cacheDir?: string,
  creds: { username?: string; password?: string } = {},
): RegistryClient {
  return new RegistryClient({
    insecure: (env("PROPELLER_INSECURE_REGISTRIES") ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    credentials: {
      username: creds.username ?? env("PROPELLER_REGISTRY_USERNAME"),
      password: creds.password ?? env("PROPELLER_REGISTRY_PASSWORD"),
      token: env("PROPELLER_REGISTRY_TOKEN"),
    },
    cacheDir,
  });
}

export function chunkSizeFromEnv(): number {
  return int("PROPELLER_CHUNK_SIZE", env("PROPELLER_CHUNK_SIZE") ?? String(DEFAULT_CHUNK_SIZE), 1024, 8 << 20);
}

export const proxyCommand = defineCommand({
  meta: {
    name: "proxy",
    description: "Run the OCI proxy alone: serves Wasm modules from registries to proplets over MQTT chunks",
  },
  args: {
    "mqtt-url": {
      type: "string",
      description: "broker (env PROPELLER_MQTT_URL)",
      default: env("PROPELLER_MQTT_URL") ?? "mqtt://localhost:1883",
    },
    "data-dir": {
      type: "string",
      description: "blob cache lives here (env PROPELLER_DATA_DIR)",
      default: env("PROPELLER_DATA_DIR") ?? defaultDataDir(),
    },
    "domain-id": {
      type: "string",
      description: "env PROPELLER_DOMAIN_ID",
      default: env("PROPELLER_DOMAIN_ID") ?? DEFAULT_DOMAIN_ID,
    },
    "channel-id": {
      type: "string",
      description: "env PROPELLER_CHANNEL_ID",
      default: env("PROPELLER_CHANNEL_ID") ?? DEFAULT_CHANNEL_ID,
    },
    ...logLevelArg,
  },
  run: ({ args }) =>
    action(
      async () => {
        // Its identity: PROXY_ENTITY_ID and PROXY_API_KEY, else the [proxy] section of config.toml, as upstream.
        const file = configSection(env("PROXY_CONFIG_FILE") ?? "config.toml", "proxy");
        const id = env("PROXY_ENTITY_ID") ?? file.entity_id;
        const key = env("PROXY_API_KEY") ?? file.api_key;
        const login = id && key ? { username: id, password: key } : {};
        const client = await connectMqtt(args["mqtt-url"], {
          clientId: id ?? `proxy-${crypto.randomUUID()}`,
          ...login,
        });
        const svc = new ProxyService(
          client,
          { domainId: args["domain-id"], channelId: args["channel-id"] },
          registryFromEnv(args["data-dir"]),
          chunkSizeFromEnv(),
        );
        await svc.listen();
        log.info(
          `OCI proxy on ${args["mqtt-url"]} (registries over plain HTTP: localhost and PROPELLER_INSECURE_REGISTRIES)`,
        );
        process.once("SIGTERM", () => void client.endAsync().then(() => process.exit(0)));
        process.once("SIGINT", () => void client.endAsync().then(() => process.exit(0)));
      },
      args["log-level"],
      args["log-format"],
    ),
});
