import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecResult } from "./execute.ts";
import type { Running } from "./pool.ts";

// Host runtime: each task is a child process — by default this same executable's `propeller wasm run`, so
// process isolation needs nothing else installed; or an external CLI such as wasmtime, with upstream's argument
// order. Result = stdout; a non-zero exit fails with the code and stderr; stop = SIGKILL. Both pipes are read
// while the child runs, so a large output cannot deadlock it.

export interface HostSpec {
  bytes: Uint8Array;
  sha256: string;
  /** Export to call (`--invoke`), for a core module whose export the task names. */
  invoke?: string;
  /** A command's argv[0]: the task name, as in the in-process runtime. */
  argv0: string;
  inputs: string[];
  env: Record<string, string>;
  /** Runtime options from cli_args, passed through. */
  cliArgs: string[];
  timeoutMs?: number;
}

const OUTPUT_LIMIT = 8 << 20;

/** The command that runs `propeller wasm run` with this very program. */
export function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return compiled ? [process.execPath, "wasm", "run"] : [process.execPath, Bun.main, "wasm", "run"];
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<{ text: string; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for await (const c of stream) {
    if (size < OUTPUT_LIMIT) chunks.push(c.subarray(0, OUTPUT_LIMIT - size));
    else truncated = true;
    size += c.length;
  }
  return { text: new TextDecoder().decode(Buffer.concat(chunks)), truncated: truncated || size > OUTPUT_LIMIT };
}

export class HostRuntime {
  private dir = join(tmpdir(), `propeller-modules-${process.getuid?.() ?? 0}`);
  /** PIDs of running children by task id, for metrics. */
  readonly pids = new Map<string, number>();

  constructor(private external?: string) {
    mkdirSync(this.dir, { recursive: true });
  }

  get name(): string {
    return this.external ?? "propeller-host";
  }

  private file(spec: HostSpec): string {
    // Modules are written once per content: the name is the digest.
    const path = join(this.dir, `${spec.sha256}.wasm`);
    if (!existsSync(path)) {
      writeFileSync(`${path}.tmp`, spec.bytes);
      renameSync(`${path}.tmp`, path);
    }
    return path;
  }

  private argv(spec: HostSpec, file: string): string[] {
    const invoke = spec.invoke ? ["--invoke", spec.invoke] : [];
    const env = Object.entries(spec.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]);
    if (this.external) return [this.external, "run", ...invoke, ...spec.cliArgs, ...env, file, ...spec.inputs];
    return [
      ...selfCommand(),
      file,
      ...invoke,
      "--argv0",
      spec.argv0,
      "--exit-with-parent",
      ...spec.cliArgs,
      ...env,
      "--",
      ...spec.inputs,
    ];
  }

  run(taskId: string, spec: HostSpec): Running {
    const proc = Bun.spawn(this.argv(spec, this.file(spec)), {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...spec.env },
    });
    this.pids.set(taskId, proc.pid);
    let stopped: string | undefined;
    const timer = spec.timeoutMs
      ? setTimeout(() => stop(`task timed out after ${spec.timeoutMs! / 1000}s`), spec.timeoutMs)
      : undefined;
    const stop = (reason = "task stopped") => {
      stopped ??= reason;
      proc.kill("SIGKILL");
    };
    const done = (async (): Promise<ExecResult> => {
      const [out, err, code] = await Promise.all([collect(proc.stdout), collect(proc.stderr), proc.exited]);
      clearTimeout(timer);
      this.pids.delete(taskId);
      const result = out.text + (out.truncated ? "\n[output truncated]" : "");
      if (stopped) return { ok: false, result, error: stopped };
      if (code !== 0)
        return {
          ok: false,
          result,
          exitCode: code,
          error: `exit code ${code}${err.text.trim() ? `: ${err.text.trim()}` : ""}`,
        };
      return { ok: true, result, exitCode: 0 };
    })();
    return { done, stop, pid: proc.pid };
  }
}
