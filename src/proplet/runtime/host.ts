import { existsSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
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

  /**
   * Module files go in `<stateDir>/modules`, or a private temp dir made for this process: a fixed name under /tmp
   * could be made first by another user, who could then swap a module between its write and the child's read.
   */
  constructor(
    private external?: string,
    stateDir?: string,
  ) {
    this.dir = stateDir ? join(stateDir, "modules") : mkdtempSync(join(tmpdir(), "propeller-modules-"));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
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

  private argv(spec: HostSpec, a: HostArgs, file: string): string[] {
    const invoke = a.invoke ? ["--invoke", a.invoke] : [];
    const env = Object.entries(spec.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]);
    const mb = spec.maxMemoryMb;
    if (this.external) {
      const cap = mb ? ["-W", `max-memory-size=${mb * 1024 * 1024}`] : []; // wasmtime's spelling
      return [this.external, "run", ...invoke, ...cap, ...a.cliArgs, ...env, file, ...spec.inputs];
    }
    const cap = mb ? ["--max-memory-mb", String(mb)] : [];
    const self = [...selfCommand(), file, ...invoke, "--argv0", spec.name, "--exit-with-parent", ...cap];
    return [...self, ...a.cliArgs, ...env, "--", ...spec.inputs];
  }

  run(taskId: string, spec: HostSpec): Running {
    const a = this.args(spec);
    const proc = Bun.spawn(this.argv(spec, a, this.file(spec, a.sha256)), {
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
