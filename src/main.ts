#!/usr/bin/env bun

// Colour only for a person at a terminal, and never with NO_COLOR (whatever its value): citty decides when it
// is loaded, so this comes first.
if (!process.stdout.isTTY || process.env.NO_COLOR) process.env.NO_COLOR = "1";
// `propeller tasks list | head -3`: a reader that went away is no error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
  });
}
// Under npm/npx, end with the launcher rather than outlive it (src/cli/launcher.ts).
(await import("./cli/launcher.ts")).endWithLauncher();
// The command tree (src/cli/commands.ts) and its runner load only now, after the colour choice.
const { runCli } = await import("./cli/run.ts");
const { main, version } = await import("./cli/commands.ts");

await runCli(main, version, process.argv.slice(2));

export {};
