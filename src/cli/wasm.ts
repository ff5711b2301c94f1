import { defineCommand } from "citty";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseRuntimeOptions } from "../core/wasm-call.ts";
import { execute } from "../proplet/runtime/execute.ts";
import { ModuleCache } from "../proplet/runtime/modules.ts";
import { action, UsageError } from "./args.ts";

// `propeller wasm run`: runs one module here, as a proplet would, with stdout and stderr passed through.
export const wasmCommand = defineCommand({
  meta: { name: "wasm", description: "Run Wasm modules locally" },
  subCommands: {
    run: defineCommand({
      meta: { description: "Run FILE: a WASI command with ARGS as argv, or a core export (--invoke) with ARGS as inputs" },
      args: {
        file: { type: "positional", description: "path to a .wasm file", required: true },
        invoke: { type: "string", description: "export to call instead of _start" },
        dir: { type: "string", description: "preopen HOST[::GUEST] (comma-separated for several)" },
        env: { type: "string", description: "comma-separated KEY=VALUE for the guest" },
      },
      run: ({ args }) =>
        action(async () => {
          const cli: string[] = [];
          if (args.invoke) cli.push(`--invoke=${args.invoke}`);
          for (const d of args.dir?.split(",") ?? []) if (d) cli.push(`--dir=${d}`);
          for (const e of args.env?.split(",") ?? []) if (e) cli.push(`--env=${e}`);
          const options = parseRuntimeOptions(cli);
          if (typeof options === "string") throw new UsageError(options);
          const compiled = new ModuleCache().load(new Uint8Array(readFileSync(args.file)));
          const r = execute({
            module: compiled.module,
            functions: compiled.functions,
            name: args.invoke ?? basename(args.file, ".wasm"),
            inputs: args._.slice(1),
            env: {},
            options,
            stopFlag: new Int32Array(new SharedArrayBuffer(4)),
            timeoutMs: 0,
            outputLimit: 64 << 20,
          });
          if (r.result) process.stdout.write(r.result.endsWith("\n") || !args.invoke ? r.result : `${r.result}\n`);
          if (!r.ok) {
            process.stderr.write(`error: ${r.error}\n`);
            process.exitCode = r.exitCode || 1;
          }
        }),
    }),
  },
});
