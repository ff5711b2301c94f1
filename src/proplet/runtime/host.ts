import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../../core/digest.ts";
import { isComponent } from "../../core/wasm-binary.ts";
import { chooseEntry, formatRuntimeOptions } from "../../core/wasm-call.ts";
import { inspect } from "../../core/wasm-info.ts";
import type { ExecResult } from "./execute.ts";
import { FLUSH_MS, type OutputSink, OutputTap, type Stream } from "./output.ts";
import type { Running } from "./pool.ts";
import { OUTPUT_LIMIT, type RunRequest } from "./protocol.ts";

// Host runtime: each task is a child process — by default this same executable's `propeller wasm run`, so
// process isolation needs nothing else installed; or an external CLI such as wasmtime, with upstream's argument
// order. Result = stdout; a non-zero exit fails with the code and stderr; stop = SIGKILL. Both pipes are read
// while the child runs, so a large output cannot deadlock it.
//
// The child is started with a fixed environment of its own (CHILD_ENV), nothing of the proplet's (its API key is
// in its env) and nothing of the task's: variables the dynamic loader or the runtime honours (LD_PRELOAD,
// BUN_OPTIONS, NODE_OPTIONS, WASMTIME_*…) would otherwise run code of the task's choosing as the proplet's user.
// The task's env reaches the guest only as the runtime's `--env=K=V` flags; every task field goes as one
// `--flag=value` argument or after the module (`--`), so none can become another option of the child. Its
// working directory is the proplet's private module directory, where no task writes (Bun reads a bunfig.toml
// and a .env from the working directory).

/** The whole environment of a child runtime. */
export const CHILD_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  LANG: "C.UTF-8",
  TZ: "UTC",
};

export interface HostSpec extends RunRequest {
  /** The module as it came: the child compiles it itself. */
  bytes: Uint8Array;
  /** Receives the output while the task runs. */
  onOutput?: OutputSink;
}

/** The child's command line for one run: the export it calls, a command's argv[0], and the runtime options. */
interface HostArgs {
  sha256: string;
  /** Export to call (`--invoke`), for a core module whose export the task names. */
  invoke?: string;
  /** Runtime options in wasmtime's spelling (`--dir=HOST::GUEST`, `--env=K=V`). */
  cliArgs: string[];
}

/** The command that runs `propeller wasm run` with this very program. */
export function selfCommand(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return compiled ? [process.execPath, "wasm", "run"] : [process.execPath, Bun.main, "wasm", "run"];
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  tap?: (c: Uint8Array) => void,
): Promise<{ text: string; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for await (const c of stream) {
    tap?.(c);
    if (size < OUTPUT_LIMIT) chunks.push(c.subarray(0, OUTPUT_LIMIT - size));
    else truncated = true;
    size += c.length;
  }
  return { text: new TextDecoder().decode(Buffer.concat(chunks)), truncated: truncated || size > OUTPUT_LIMIT };
}

export class HostRuntime {
  private dir: string;
  /** PIDs of running children by task id, for metrics. */
  readonly pids = new Map<string, number>();
  /** The external CLI's path, found once on the proplet's PATH (the child's own PATH is fixed). */
  private externalPath?: string;

  /**
   * Module files go in `<stateDir>/modules`, or a private temp dir made for this process (removed at exit): a fixed
   * name under /tmp could be made first by another user, who could then swap a module between its write and the
   * child's read.
   */
  constructor(
    private external?: string,
    stateDir?: string,
  ) {
    if (external) this.externalPath = Bun.which(external) ?? external;
    this.dir = stateDir ? join(stateDir, "modules") : mkdtempSync(join(tmpdir(), "propeller-modules-"));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (!stateDir) process.once("exit", () => rmSync(this.dir, { recursive: true, force: true }));
  }

  get name(): string {
    return this.external ?? "propeller-host";
  }

  private file(spec: HostSpec, sha256: string): string {
    // Modules are written once per content: the name is the digest.
    const path = join(this.dir, `${sha256}.wasm`);
    if (!existsSync(path)) {
      writeFileSync(`${path}.tmp`, spec.bytes);
      renameSync(`${path}.tmp`, path);
    }
    return path;
  }

  /** What the child is told: the entry chosen as the in-process runtime would, and the options as flags. */
  private args(spec: HostSpec): HostArgs {
    const sha256 = sha256Hex(spec.bytes);
    const cliArgs = formatRuntimeOptions(spec.options);
    // A component's child picks its export from argv[0] by the same rule (wit.ts), so only `--invoke` is passed.
    if (isComponent(spec.bytes)) return { sha256, invoke: spec.options.invoke, cliArgs };
    const entry = chooseEntry(inspect(spec.bytes).functions, spec.name, spec.options.invoke);
    const invoke = typeof entry !== "string" && entry.kind === "call" ? entry.export : undefined;
    return { sha256, invoke, cliArgs };
  }

  /** Every value rides in its own `--flag=value` argument; the guest's arguments come after the module. */
  private argv(spec: HostSpec, a: HostArgs, file: string): string[] {
    const invoke = a.invoke ? [`--invoke=${a.invoke}`] : [];
    const env = Object.entries(spec.env).map(([k, v]) => `--env=${k}=${v}`);
    const mb = spec.maxMemoryMb;
    if (this.externalPath) {
      const cap = mb ? [`-Wmax-memory-size=${mb * 1024 * 1024}`] : []; // wasmtime's spelling
      // wasmtime takes every argument after the module as the guest's.
      return [this.externalPath, "run", ...invoke, ...cap, ...env, ...a.cliArgs, file, ...spec.inputs];
    }
    const cap = [
      ...(mb ? [`--max-memory-mb=${mb}`] : []),
      ...(spec.maxDiskMb ? [`--max-disk-mb=${spec.maxDiskMb}`] : []),
    ];
    const self = [...selfCommand(), file, ...invoke, `--argv0=${spec.name}`, "--exit-with-parent", ...cap];
    // The task's env first: `cli_args`' --env comes after and wins, as in the in-process runtime.
    return [...self, ...env, ...a.cliArgs, "--", ...spec.inputs];
  }

  run(taskId: string, spec: HostSpec): Running {
    const a = this.args(spec);
    const proc = Bun.spawn(this.argv(spec, a, this.file(spec, a.sha256)), {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...CHILD_ENV },
      cwd: this.dir,
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
    const tap = spec.onOutput ? new OutputTap(spec.onOutput, OUTPUT_LIMIT) : undefined;
    const to = (s: Stream) => tap && ((c: Uint8Array) => tap.write(s, c));
    // Output held back by the tap's pacing goes out on this tick even while the child is silent.
    const ticker = tap ? setInterval(() => tap.tick(), FLUSH_MS) : undefined;
    const done = (async (): Promise<ExecResult> => {
      const [out, err, code] = await Promise.all([
        collect(proc.stdout, to("stdout")),
        collect(proc.stderr, to("stderr")),
        proc.exited,
      ]);
      clearInterval(ticker);
      tap?.end();
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
