import { readFileSync } from "node:fs";
import type { BrokerTls } from "../broker/broker.ts";
import { LOG_LEVELS, log, logSettings, setLogFormat, setLogLevel } from "../log.ts";
import type { Layers } from "./layers.ts";
import { underJournald } from "./systemd.ts";
import { checkTlsFiles } from "./tls-files.ts";

// `kill -HUP` (systemctl reload) on serve: the settings are read again (environment and config file; flags cannot
// change) and what can change live is applied: the log level and format, and the TLS certificate, key and client
// CA, read again from their files even when the paths are the same (a renewed certificate), and the trust policy
// with its registries.d (proxy/trust-reload.ts). Anything else that changed is named in the log as needing a
// restart. A file that no longer passes the start-up checks changes nothing.

/** Settings that take effect without a restart. */
const LIVE = new Set(["log-level", "log-format", "tls-cert", "tls-key", "tls-client-ca"]);
const TLS_FLAGS = ["tls-cert", "tls-key", "tls-client-ca"] as const;
/** Live when serve started with a policy (there is one to replace); else a policy set later needs a restart. */
const TRUST_FLAGS = new Set(["trust-policy", "registries-d"]);

export interface ReloadTarget {
  /** The settings and their sources at start. */
  started: Layers;
  /** The flags' own values (a flag given on the command line cannot change). */
  flags: Record<string, unknown>;
  /** Present once serve (or its stand-by) runs with TLS. */
  reloadTls?: (tls: BrokerTls) => void;
  /** Present when serve runs with a trust policy: reads it again (logging whether the new one replaced it). */
  trust?: { reload(policyPath: string, registriesD: string): Promise<boolean> };
}

const value = (l: Layers, flags: Record<string, unknown>, flag: string) => {
  const r = l.resolved.get(flag);
  return r?.source === "flag" ? flags[flag] : r?.value;
};

/** Reads the settings again and applies what can change live; returns what was reloaded and what was not. */
export function reload(target: ReloadTarget, fresh: () => Layers): { reloaded: string[]; restart: string[] } {
  let now: Layers;
  try {
    now = fresh();
    now.check();
    const level = String(value(now, target.flags, "log-level") ?? "info");
    const format = String(value(now, target.flags, "log-format") ?? "pretty");
    if (!(LOG_LEVELS as readonly string[]).includes(level))
      throw new Error(`${now.label("log-level")}: unknown log level ${level} (use ${LOG_LEVELS.join(", ")})`);
    if (format !== "pretty" && format !== "json")
      throw new Error(`${now.label("log-format")}: unknown log format ${format} (use json or pretty)`);
  } catch (e) {
    log.error(`SIGHUP: settings not reloaded, the running ones are kept: ${e instanceof Error ? e.message : e}`);
    return { reloaded: [], restart: [] };
  }
  const reloaded: string[] = [];
  const restart: string[] = [];
  for (const [flag] of now.resolved) {
    if (LIVE.has(flag) || (target.trust && TRUST_FLAGS.has(flag))) continue;
    if (String(value(now, target.flags, flag)) !== String(value(target.started, target.flags, flag)))
      restart.push(flag);
  }
  const was = logSettings();
  const level = String(value(now, target.flags, "log-level") ?? "info");
  const format = String(value(now, target.flags, "log-format") ?? "pretty");
  if (level !== was.level) {
    setLogLevel(level);
    reloaded.push(`log level ${was.level} → ${level}`);
  }
  if (format !== was.format) {
    setLogFormat(format, underJournald());
    reloaded.push(`log format ${was.format} → ${format}`);
  }
  const paths = Object.fromEntries(TLS_FLAGS.map((f) => [f, value(now, target.flags, f) as string | undefined]));
  if (paths["tls-cert"] && paths["tls-key"]) {
    if (!target.reloadTls) restart.push("TLS (serve started without it)");
    else {
      try {
        const read = (f: string) => readFileSync(paths[f]!, "utf8");
        const file = (f: string) => ({ flag: `--${f}`, file: paths[f]!, pem: read(f) });
        checkTlsFiles(file("tls-cert"), file("tls-key"), paths["tls-client-ca"] ? file("tls-client-ca") : undefined);
        target.reloadTls({
          cert: read("tls-cert"),
          key: read("tls-key"),
          ...(paths["tls-client-ca"] ? { clientCa: read("tls-client-ca") } : {}),
        });
        reloaded.push("TLS certificate and key (HTTPS, WSS, MQTT over TLS)");
      } catch (e) {
        log.error(
          `SIGHUP: TLS certificate not reloaded, the running one is kept: ${e instanceof Error ? e.message : e}`,
        );
      }
    }
  }
  // The policy's keys are read asynchronously: whether it loaded is said by its own line, not claimed here (a bad
  // edit logged "reloaded" here and "not reloaded" after it).
  let trust = "";
  if (target.trust) {
    const policy = value(now, target.flags, "trust-policy") as string | undefined;
    if (!policy) restart.push("trust-policy (unset: the running policy is kept)");
    else {
      void target.trust.reload(policy, String(value(now, target.flags, "registries-d")));
      trust = `; reading trust policy ${policy} again (its outcome follows)`;
    }
  }
  const tail = restart.length ? `; changed but needs a restart: ${restart.join(", ")}` : "";
  log.info(`SIGHUP: reloaded ${reloaded.length ? reloaded.join("; ") : "nothing that changed"}${trust}${tail}`);
  return { reloaded, restart };
}
