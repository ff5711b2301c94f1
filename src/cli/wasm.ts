import { realpathSync, writeSync } from "node:fs";
import { basename, isAbsolute } from "node:path";
import { defineCommand } from "citty";
import { parseRuntimeOptions } from "../core/wasm-call.ts";
import { hereCompiler } from "../proplet/runtime/compiler.ts";
import { DEFAULT_TASK_DISK_MB } from "../proplet/runtime/disk-cap.ts";
import { execute } from "../proplet/runtime/execute.ts";
import { ModuleCache } from "../proplet/runtime/modules.ts";
import { action, int, readUserFile, UsageError } from "./args.ts";
import { terminalSafe } from "./output.ts";

// `propeller wasm run`: runs one module here, as a proplet would, with stdout and stderr passed through.
/** Writes all of `bytes` to `fd`, waiting out a full pipe (EAGAIN) rather than losing the guest's output. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) {
    try {
      off += writeSync(fd, bytes, off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Bun.sleepSync(1); // the reader is behind: wait for it instead of spinning a core
    }
  }
}

/** Options of `wasm run` that take a value. */
const VALUED = new Set(["--invoke", "--argv0", "--max-memory-mb", "--max-disk-mb"]);

export const wasmCommand = defineCommand({
  meta: { name: "wasm", description: "Run Wasm modules locally" },
  subCommands: {
    run: defineCommand({
      meta: {
        description:
          "Run FILE: a WASI command with ARGS as argv, or a core export (--invoke) with ARGS as inputs; put ARGS after -- when one starts with -",
      },
      args: {
        file: { type: "positional", description: "path to a .wasm file", required: true },
        invoke: { type: "string", description: "export to call instead of _start" },
        argv0: { type: "string", description: "the command's argv[0] (default: the file name)" },
        "exit-with-parent": {
          type: "boolean",
          description: "end the run if the parent process dies (used by the host runtime)",
        },
        dir: { type: "string", description: "preopen HOST[::GUEST]; repeat for several" },
        env: { type: "string", description: "KEY=VALUE for the guest; repeat for several" },
        "max-memory-mb": { type: "string", description: "the most linear memory the module may grow to, in MiB" },
        "max-disk-mb": {
          type: "string",
          description: `the largest a file may grow to, and the most all files may grow by, in MiB (default ${DEFAULT_TASK_DISK_MB})`,
        },
      },
      run: ({ args, rawArgs }) =>
        action(async () => {
          // --env and --dir may repeat (citty keeps only the last), so they are read from the raw arguments: a
          // value given apart (`--argv0 NAME`) is skipped, so no value is ever read as one of these options.
          const cli: string[] = [];
          if (args.invoke) cli.push(`--invoke=${args.invoke}`);
          const end = rawArgs.indexOf("--");
          const flags = end < 0 ? rawArgs : rawArgs.slice(0, end);
          for (let i = 0; i < flags.length; i++) {
            const m = /^--(env|dir)(?:=([\s\S]*))?$/.exec(flags[i]!);
            if (m) cli.push(`--${m[1]}=${m[2] ?? flags[++i] ?? ""}`);
            else if (VALUED.has(flags[i]!)) i++;
          }
          const options = parseRuntimeOptions(cli);
          if (typeof options === "string") throw new UsageError(options);
          // A preopen is opened by its real path (preopen.ts): a user's is made so here. A proplet's child is given
          // the real path the proplet checked against PROPLET_DIRS, and must not resolve it a second time.
          for (const d of options.dirs)
            if (!isAbsolute(d.host) || !args["exit-with-parent"]) d.host = realpathSync(d.host);
          const cap = args["max-memory-mb"] ? int("max-memory-mb", args["max-memory-mb"], 1, 4096) : undefined;
          const disk = args["max-disk-mb"] ? int("max-disk-mb", args["max-disk-mb"], 1, 1 << 20) : undefined;
          const runnable = await new ModuleCache(1, hereCompiler).load(new Uint8Array(readUserFile(args.file)), cap);
          const r = execute({
            runnable,
            name: args.invoke ?? args.argv0 ?? basename(args.file, ".wasm"),
            inputs: args._.slice(1),
            env: {},
            options,
            maxDiskMb: disk,
            stopFlag: new Int32Array(new SharedArrayBuffer(12)),
            timeoutMs: 0,
            outputLimit: 64 << 20,
            ...(args["exit-with-parent"] ? { parentPid: process.ppid } : {}),
            // The guest's output goes out as it writes it (a proplet's host runtime streams it to `tasks logs`).
            echo: (stream, bytes) => writeAll(stream === "stdout" ? 1 : 2, bytes),
          });
          // A command's stdout and stderr went out already; an export's return value is printed now.
          if (r.result && !r.command) {
            process.stdout.write(r.result.endsWith("\n") ? r.result : `${r.result}\n`);
          }
          if (!r.ok) {
            if (!r.exitCode) process.stderr.write(`error: ${terminalSafe(r.error ?? "")}\n`);
            process.exitCode = r.exitCode || 1;
          }
        }),
    }),
  },
});
