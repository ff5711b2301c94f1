#!/usr/bin/env bun
import type { CommandDef } from "citty";
import { BUILD_TIME, COMMIT, VERSION } from "./version.ts";

// Colour only for a person at a terminal, and never with NO_COLOR (whatever its value): citty decides when it
// is loaded, so this comes first.
if (!process.stdout.isTTY || process.env.NO_COLOR) process.env.NO_COLOR = "1";
// `propeller tasks list | head -3`: a reader that went away is no error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
  });
}
const { runCli } = await import("./cli/run.ts");

// One line per subcommand. Each is loaded only when it runs: `serve` does not parse the CLI's client commands,
// nor a proplet the manager, which keeps start-up time and memory down.

const version = `${VERSION} (commit ${COMMIT}, built ${BUILD_TIME})`;

const main: CommandDef = {
  meta: {
    name: "propeller",
    version,
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
    fl: () => import("./cli/fl.ts").then((m) => m.flCommand),
    health: () => import("./cli/health.ts").then((m) => m.healthCommand),
    tokens: () => import("./cli/tokens.ts").then((m) => m.tokensCommand),
    provision: () => import("./cli/provision.ts").then((m) => m.provisionCommand),
    certs: () => import("./cli/certs.ts").then((m) => m.certsCommand),
    config: () => import("./cli/config.ts").then((m) => m.configCommand),
    install: () => import("./cli/install.ts").then((m) => m.installCommand),
    uninstall: () => import("./cli/install.ts").then((m) => m.uninstallCommand),
    backup: () => import("./cli/backup.ts").then((m) => m.backupCommand),
    restore: () => import("./cli/backup.ts").then((m) => m.restoreCommand),
    migrate: () => import("./cli/migrate.ts").then((m) => m.migrateCommand),
    wasm: () => import("./cli/wasm.ts").then((m) => m.wasmCommand),
    examples: () => import("./cli/examples.ts").then((m) => m.examplesCommand),
  },
};

await runCli(main, version, process.argv.slice(2));
