import { defineCommand } from "citty";
import { log } from "../log.ts";
import { ReloadableTrust } from "../proxy/trust-reload.ts";
import { action } from "./args.ts";
import { privateUmask } from "./data-dir.ts";
import { warnUnknownEnv } from "./env-check.ts";
import { defaultsOf, Layers } from "./layers.ts";
import { type ReloadTarget, reload } from "./reload.ts";
import { serveFlags } from "./serve-flags.ts";
import { checkSettings, serveOptions } from "./serve-options.ts";
import { serve } from "./site.ts";
import { ServiceNotifier } from "./systemd.ts";

// `propeller serve`: the flags are in serve-flags.ts, their checks in serve-options.ts, the composition in
// site.ts; here, the order of a start (checks, systemd and SIGHUP, serve, signals) and of a stop.

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
    return serveFlags(L);
  },
  run: ({ args }) =>
    action(
      async () => {
        L.check();
        warnUnknownEnv();
        privateUmask();
        const checked = checkSettings(L, args);
        // systemd (Type=notify): READY=1 once serving, as active manager or stand-by; WATCHDOG=1 meanwhile.
        const systemd = new ServiceNotifier();
        systemd.startWatchdog();
        // SIGHUP reloads what can change live (cli/reload.ts); before serve runs, the log settings only.
        const reloading: ReloadTarget = { started: L, flags: args };
        process.on("SIGHUP", () => void reload(reloading, freshSettings));
        const options = await serveOptions(L, args, checked);
        if (options.trust instanceof ReloadableTrust) reloading.trust = options.trust;
        const s = await start({
          ...options,
          onStandby: (reloadTls) => {
            if (args["tls-cert"]) reloading.reloadTls = reloadTls;
            void systemd.ready("stand-by: another manager of the site is active");
          },
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
