#!/usr/bin/env bun
import { defineCommand, runMain } from "citty";
import { BUILD_TIME, COMMIT, VERSION } from "./version.ts";

// One line per subcommand. Each is loaded only when it runs: `serve` does not parse the CLI's client commands,
// nor a proplet the manager, which keeps start-up time and memory down.

const main = defineCommand({
  meta: {
    name: "propeller",
    version: `${VERSION} (commit ${COMMIT}, built ${BUILD_TIME})`,
    description: "WebAssembly workload orchestrator for the cloud–edge continuum",
  },
  subCommands: {
    serve: () => import("./cli/serve.ts").then((m) => m.serveCommand),
    proplet: () => import("./cli/proplet.ts").then((m) => m.propletCommand),
    tasks: () => import("./cli/tasks.ts").then((m) => m.tasksCommand),
    proplets: () => import("./cli/proplets.ts").then((m) => m.propletsCommand),
    jobs: () => import("./cli/groups.ts").then((m) => m.jobsCommand),
    workflows: () => import("./cli/groups.ts").then((m) => m.workflowsCommand),
    proxy: () => import("./cli/proxy.ts").then((m) => m.proxyCommand),
    push: () => import("./cli/oci.ts").then((m) => m.pushCommand),
    pull: () => import("./cli/oci.ts").then((m) => m.pullCommand),
    watch: () => import("./cli/watch.ts").then((m) => m.watchCommand),
    health: () => import("./cli/health.ts").then((m) => m.healthCommand),
    tokens: () => import("./cli/tokens.ts").then((m) => m.tokensCommand),
    provision: () => import("./cli/provision.ts").then((m) => m.provisionCommand),
    certs: () => import("./cli/certs.ts").then((m) => m.certsCommand),
    config: () => import("./cli/config.ts").then((m) => m.configCommand),
    install: () => import("./cli/install.ts").then((m) => m.installCommand),
    uninstall: () => import("./cli/install.ts").then((m) => m.uninstallCommand),
    backup: () => import("./cli/backup.ts").then((m) => m.backupCommand),
    restore: () => import("./cli/backup.ts").then((m) => m.restoreCommand),
    wasm: () => import("./cli/wasm.ts").then((m) => m.wasmCommand),
    examples: () => import("./cli/examples.ts").then((m) => m.examplesCommand),
  },
});

await runMain(main);
