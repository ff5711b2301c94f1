import { defineCommand } from "citty";
import { action } from "./args.ts";
import { printJson, printTable } from "./output.ts";
import { propletSettings } from "./proplet.ts";
import { serveSettings } from "./serve.ts";

// `propeller config show`: the settings serve (or, with --proplet, a proplet) would start with, and where each
// came from: the environment, the config file and its key, or the default. Settings are checked exactly as
// serve (or the proplet) checks them at start. Secrets are not printed: API keys, and passwords inside URLs.

/**
 * A value with the secrets it may carry hidden: the password of a URL (`postgres://user:PASSWORD@host/db`,
 * `mqtt://user:PASSWORD@host`), and a query's token, key or password parameters.
 */
export function masked(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  return value
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^/?#]*@/i, "$1:****@")
    .replace(/([?&](?:password|token|api_key|apikey|key|secret)=)[^&#]*/gi, "$1****");
}

export const configCommand = defineCommand({
  meta: { name: "config", description: "Show the effective settings of serve or a proplet" },
  subCommands: {
    show: defineCommand({
      meta: { description: "Print each setting, its value and where it came from (env, file key, default)" },
      args: {
        proplet: { type: "boolean", description: "a proplet's settings instead of serve's" },
        config: { type: "string", description: "the settings file to read (default /etc/propeller/config.toml)" },
        json: { type: "boolean", description: "print JSON" },
      },
      run: ({ args }) =>
        action(async () => {
          const L = args.proplet ? propletSettings() : await serveSettings();
          if (process.exitCode) return; // serve's own check refused a setting and said which
          const rows = [...L.resolved.entries()].map(([flag, r]) => ({
            key: flag.replaceAll("-", "_"),
            value: r.value === undefined ? "" : r.secret ? "(set, not shown)" : masked(String(r.value)),
            source: r.source,
          }));
          if (args.json) return printJson({ file: L.file ?? null, settings: rows });
          printTable(rows, [
            ["KEY", "key"],
            ["VALUE", "value"],
            ["SOURCE", "source"],
          ]);
          process.stdout.write(`file: ${L.file ?? "none"}\n`);
        }),
    }),
  },
});
