#!/usr/bin/env bun
import { defineCommand, runMain } from "citty";
import { backupCommand, restoreCommand } from "./cli/backup.ts";
import { certsCommand } from "./cli/certs.ts";
import { configCommand } from "./cli/config.ts";
import { jobsCommand, workflowsCommand } from "./cli/groups.ts";
import { healthCommand } from "./cli/health.ts";
import { installCommand, uninstallCommand } from "./cli/install.ts";
import { pullCommand, pushCommand } from "./cli/oci.ts";
import { propletCommand } from "./cli/proplet.ts";
import { propletsCommand } from "./cli/proplets.ts";
import { provisionCommand } from "./cli/provision.ts";
import { proxyCommand } from "./cli/proxy.ts";
import { serveCommand } from "./cli/serve.ts";
import { tasksCommand } from "./cli/tasks.ts";
import { tokensCommand } from "./cli/tokens.ts";
import { wasmCommand } from "./cli/wasm.ts";
import { watchCommand } from "./cli/watch.ts";
import { BUILD_TIME, COMMIT, VERSION } from "./version.ts";

const main = defineCommand({
  meta: {
    name: "propeller",
    version: `${VERSION} (commit ${COMMIT}, built ${BUILD_TIME})`,
    description: "WebAssembly workload orchestrator for the cloud–edge continuum",
  },
  subCommands: {
    serve: serveCommand,
    proplet: propletCommand,
    tasks: tasksCommand,
    proplets: propletsCommand,
    jobs: jobsCommand,
    workflows: workflowsCommand,
    proxy: proxyCommand,
    push: pushCommand,
    pull: pullCommand,
    watch: watchCommand,
    health: healthCommand,
    tokens: tokensCommand,
    provision: provisionCommand,
    certs: certsCommand,
    config: configCommand,
    install: installCommand,
    uninstall: uninstallCommand,
    backup: backupCommand,
    restore: restoreCommand,
    wasm: wasmCommand,
  },
});

await runMain(main);
