import type { CommandDef } from "citty";
import { BUILD_TIME, COMMIT, VERSION } from "../version.ts";

// One line per subcommand. Each is loaded only when it runs: `serve` does not parse the CLI's client commands,
// nor a proplet the manager, which keeps start-up time and memory down.

// Run from source there is no build time: "from source", not "built unbuilt".
export const version = `${VERSION} (commit ${COMMIT}, ${BUILD_TIME === "unbuilt" ? "from source" : `built ${BUILD_TIME}`})`;

export const main: CommandDef = {
  meta: {
    name: "propeller",
    version,
    description: "WebAssembly workload orchestrator for the cloud–edge continuum",
  },
  subCommands: {
    serve: () => import("./serve.ts").then((m) => m.serveCommand),
    proplet: () => import("./proplet.ts").then((m) => m.propletCommand),
    tasks: () => import("./tasks.ts").then((m) => m.tasksCommand),
    proplets: () => import("./proplets.ts").then((m) => m.propletsCommand),
    jobs: () => import("./groups.ts").then((m) => m.jobsCommand),
    workflows: () => import("./groups.ts").then((m) => m.workflowsCommand),
    proxy: () => import("./proxy.ts").then((m) => m.proxyCommand),
    push: () => import("./oci.ts").then((m) => m.pushCommand),
    pull: () => import("./oci.ts").then((m) => m.pullCommand),
    verify: () => import("./oci.ts").then((m) => m.verifyCommand),
    keys: () => import("./keys.ts").then((m) => m.keysCommand),
    watch: () => import("./watch.ts").then((m) => m.watchCommand),
    fl: () => import("./fl.ts").then((m) => m.flCommand),
    health: () => import("./health.ts").then((m) => m.healthCommand),
    tokens: () => import("./tokens.ts").then((m) => m.tokensCommand),
    provision: () => import("./provision.ts").then((m) => m.provisionCommand),
    certs: () => import("./certs.ts").then((m) => m.certsCommand),
    config: () => import("./config.ts").then((m) => m.configCommand),
    install: () => import("./install.ts").then((m) => m.installCommand),
    uninstall: () => import("./install.ts").then((m) => m.uninstallCommand),
    backup: () => import("./backup.ts").then((m) => m.backupCommand),
    restore: () => import("./backup.ts").then((m) => m.restoreCommand),
    migrate: () => import("./migrate.ts").then((m) => m.migrateCommand),
    wasm: () => import("./wasm.ts").then((m) => m.wasmCommand),
    examples: () => import("./examples.ts").then((m) => m.examplesCommand),
  },
};
