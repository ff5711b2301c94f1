import { defineCommand } from "citty";
import { connectMqtt } from "../broker/client.ts";
import { MAX_MODULE_MB_LIMIT } from "../core/module-size.ts";
import { DEFAULT_CHUNK_SIZE, DEFAULT_MAX_MODULE_MB, parseRegistryList } from "../core/oci.ts";
import { DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../core/topics.ts";
import { cannotVerify } from "../core/trust-policy.ts";
import { log } from "../log.ts";
import { RegistryClient } from "../proxy/registry.ts";
import { ProxyService } from "../proxy/service.ts";
import { DEFAULT_REGISTRIES_D, TrustConfigError } from "../proxy/trust.ts";
import { ReloadableTrust } from "../proxy/trust-reload.ts";
import { action, defaultDataDir, env, int, logLevelArg, UsageError } from "./args.ts";
import { warnUnknownEnv } from "./env-check.ts";
import { configSection } from "./provision.ts";

/** Registry settings shared by serve's embedded proxy, `propeller proxy`, push and pull. */
export function registryFromEnv(
  cacheDir: string | undefined,
  creds: { username?: string; password?: string },
  o: { authHosts: string[]; maxModuleMb?: number },
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
      hosts: o.authHosts,
    },
    cacheDir,
    ...(o.maxModuleMb ? { maxModuleBytes: o.maxModuleMb << 20 } : {}),
  });
}

/** Whether registry credentials are configured at all (env or flags). */
function hasCredentials(creds: { username?: string; password?: string } = {}): boolean {
  return Boolean(
    creds.username ??
      env("PROPELLER_REGISTRY_USERNAME") ??
      env("PROPELLER_REGISTRY_PASSWORD") ??
      env("PROPELLER_REGISTRY_TOKEN"),
  );
}

/** A registry list flag, validated. */
export function registryList(label: string, text: string | undefined): string[] {
  const l = parseRegistryList(text);
  if (typeof l === "string") throw new UsageError(`${label}: ${l} (expected comma-separated host[:port])`);
  return l;
}

export interface ProxySettings {
  /** Registries any proplet may fetch from. */
  allowed: string[];
  /** The registries (and token services) the configured credentials go to. */
  authHosts: string[];
  maxModuleMb: number;
}

/**
 * The proxy's settings from its flags (serve's and `propeller proxy`'s): credentials without the hosts they are
 * for are refused, so they never go to a host a reference or a bearer challenge names.
 */
export function proxySettings(
  label: (flag: string) => string,
  v: { allow?: string; authHosts?: string; maxModuleMb?: string },
): ProxySettings {
  const authHosts = registryList(label("registry-auth-hosts"), v.authHosts);
  if (hasCredentials() && authHosts.length === 0) {
    const l = label("registry-auth-hosts");
    throw new UsageError(
      `registry credentials are set (PROPELLER_REGISTRY_USERNAME/PASSWORD/TOKEN) but not the registries they are for: set ${l}${l.startsWith("--") ? " (env PROPELLER_REGISTRY_AUTH_HOSTS)" : ""} to host[:port] (and the host of its token service, if another)`,
    );
  }
  return {
    allowed: registryList(label("registry-allow"), v.allow),
    authHosts,
    // int() writes the dashes of a flag itself.
    maxModuleMb: int(
      label("max-module-mb").replace(/^--/, ""),
      v.maxModuleMb ?? String(DEFAULT_MAX_MODULE_MB),
      1,
      MAX_MODULE_MB_LIMIT, // as serve's own check of the same flag
    ),
  };
}

/** The flags of the proxy, for serve and `propeller proxy`; `dflt` reads each one's env twin (and config file). */
export function proxyArgs(dflt: (flag: string, envName: string, fallback?: string) => string | undefined) {
  return {
    "registry-allow": {
      type: "string",
      description:
        "comma-separated registries (host[:port]) any proplet may fetch from through the proxy, besides what the manager dispatched (env PROPELLER_REGISTRY_ALLOW)",
      default: dflt("registry-allow", "PROPELLER_REGISTRY_ALLOW"),
    },
    "registry-auth-hosts": {
      type: "string",
      description:
        "comma-separated registries (host[:port]) the registry credentials (PROPELLER_REGISTRY_USERNAME/PASSWORD/TOKEN) are for, and the host of their token service if another; no other host gets them (env PROPELLER_REGISTRY_AUTH_HOSTS)",
      default: dflt("registry-auth-hosts", "PROPELLER_REGISTRY_AUTH_HOSTS"),
    },
    "max-module-mb": {
      type: "string",
      description: `largest module the proxy fetches, in MiB (env PROPELLER_MAX_MODULE_MB, default ${DEFAULT_MAX_MODULE_MB})`,
      default: dflt("max-module-mb", "PROPELLER_MAX_MODULE_MB", String(DEFAULT_MAX_MODULE_MB)),
    },
  } as const;
}

export function chunkSizeFromEnv(): number {
  return int("PROPELLER_CHUNK_SIZE", env("PROPELLER_CHUNK_SIZE") ?? String(DEFAULT_CHUNK_SIZE), 1024, 8 << 20);
}

export const proxyCommand = defineCommand({
  meta: {
    name: "proxy",
    description:
      "Run the OCI proxy alone: serves Wasm modules from registries to proplets over MQTT chunks. Its broker identity: env PROXY_ENTITY_ID and PROXY_API_KEY, else [proxy] of config.toml (PROXY_CONFIG_FILE; `propeller provision add-proxy` writes it)",
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
    ...proxyArgs((_flag, name, fallback) => env(name) ?? fallback),
    "trust-policy": {
      type: "string",
      description:
        "containers-policy.json: the proxy sends no chunk of a module it does not accept (as serve's --trust-policy); SIGHUP reads it again (env PROPELLER_TRUST_POLICY)",
      default: env("PROPELLER_TRUST_POLICY"),
    },
    "registries-d": {
      type: "string",
      description: `where each registry's signatures are, for --trust-policy (env PROPELLER_REGISTRIES_D, default ${DEFAULT_REGISTRIES_D})`,
      default: env("PROPELLER_REGISTRIES_D") ?? DEFAULT_REGISTRIES_D,
    },
    ...logLevelArg,
  },
  run: ({ args }) =>
    action(
      async () => {
        // Settings first: a mistake is reported at once, not after waiting for the broker.
        warnUnknownEnv();
        const p = proxySettings((flag) => `--${flag}`, {
          allow: args["registry-allow"],
          authHosts: args["registry-auth-hosts"],
          maxModuleMb: args["max-module-mb"],
        });
        const registry = registryFromEnv(args["data-dir"], {}, p);
        const trust = args["trust-policy"]
          ? await ReloadableTrust.load(args["trust-policy"], args["registries-d"], registry).catch((e) => {
              throw e instanceof TrustConfigError ? new UsageError(`--trust-policy: ${e.message}`) : e;
            })
          : undefined;
        // Its identity: PROXY_ENTITY_ID and PROXY_API_KEY, else the [proxy] section of config.toml, as upstream.
        const file = configSection(env("PROXY_CONFIG_FILE") ?? "config.toml", "proxy");
        const id = env("PROXY_ENTITY_ID") ?? file.entity_id;
        const key = env("PROXY_API_KEY") ?? file.api_key;
        if (!id !== !key)
          throw new UsageError(
            `${id ? "PROXY_API_KEY" : "PROXY_ENTITY_ID"} is not set (nor in [proxy] of ${env("PROXY_CONFIG_FILE") ?? "config.toml"}) while ${id ? "PROXY_ENTITY_ID" : "PROXY_API_KEY"} is: the proxy's identity needs both`,
          );
        if (!id)
          log.warn(
            "no identity (PROXY_ENTITY_ID / PROXY_API_KEY, or [proxy] of config.toml from `propeller provision add-proxy`): connecting without credentials, which a broker with authentication refuses",
          );
        const login = id && key ? { username: id, password: key } : {};
        const client = await connectMqtt(args["mqtt-url"], {
          clientId: id ?? `proxy-${crypto.randomUUID()}`,
          ...login,
        });
        // No manager here to say what it dispatched: the allow-list and the registries of the credentials.
        const svc = new ProxyService(
          client,
          { domainId: args["domain-id"], channelId: args["channel-id"] },
          registry,
          chunkSizeFromEnv(),
          {
            allowed: [...new Set([...p.allowed, ...p.authHosts])],
            trustPropletId: false,
            // What cannot be verified (its registry unreachable) is refused like what the policy refuses.
            ...(trust ? { trust: (ref: string) => trust.image(ref).catch((e) => cannotVerify(ref, e)) } : {}),
          },
        );
        await svc.listen();
        log.info(
          `OCI proxy on ${args["mqtt-url"]}${trust ? ` under trust policy ${args["trust-policy"]}` : ""} for ${[...p.allowed, ...p.authHosts].join(", ") || "no registry (set --registry-allow)"} (registries over plain HTTP: localhost and PROPELLER_INSECURE_REGISTRIES)`,
        );
        // SIGHUP (systemctl reload): the trust policy and registries.d read again; a bad one keeps the running one.
        process.on("SIGHUP", () => {
          if (trust) void trust.reload();
          else log.info("SIGHUP: nothing to reload (no --trust-policy)");
        });
        process.once("SIGTERM", () => void client.endAsync().then(() => process.exit(0)));
        process.once("SIGINT", () => void client.endAsync().then(() => process.exit(0)));
      },
      args["log-level"],
      args["log-format"],
    ),
});
