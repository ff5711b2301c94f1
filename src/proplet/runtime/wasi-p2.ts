import { Directory, File, type Inode } from "@bjorn3/browser_wasi_shim";
import { createCli } from "@bytecodealliance/preview2-shim/cli";
import { monotonicClock, wallClock } from "@bytecodealliance/preview2-shim/clocks";
import { createFilesystem, type FileDataEntry } from "@bytecodealliance/preview2-shim/filesystem";
import { error, poll, pollableCreate, streams } from "@bytecodealliance/preview2-shim/io";
import { insecure, insecureSeed, random } from "@bytecodealliance/preview2-shim/random";
import type { PROVIDED } from "./component.ts";
import type { DiskBudget } from "./disk-cap.ts";
import type { Guard } from "./guard.ts";
import { cappedAdapter } from "./wasi-p2-cap.ts";

// The WASI preview-2 host a component runs against: @bytecodealliance/preview2-shim's browser implementations,
// which touch nothing of the host (an in-memory filesystem, output to handlers we give, no sockets, no HTTP). The
// tsconfig maps the package to them: its Node build would hand the guest the real filesystem and start an I/O
// thread. Two parts are ours: output goes to the run's bounded capture, and waiting on a clock blocks this worker
// thread (the browser build returns a Promise, which a synchronous guest cannot await) in slices that still
// notice a stop.

/** The guest's view of a preopened directory, as the in-memory filesystem holds it. */
export function toFileData(tree: Map<string, Inode>): FileDataEntry {
  const dir: Record<string, FileDataEntry> = {};
  for (const [name, inode] of tree) {
    if (inode instanceof Directory) dir[name] = toFileData(inode.contents);
    else if (inode instanceof File) dir[name] = { source: inode.data };
  }
  return { dir };
}

/** Back to the tree the preopen loader writes to the host; links the guest made are left out. */
export function fromFileData(entry: FileDataEntry): Directory {
  const contents = new Map<string, Inode>();
  for (const [name, e] of Object.entries(entry.dir ?? {})) {
    if (e.dir) contents.set(name, fromFileData(e));
    else if (e.source !== undefined)
      contents.set(name, new File(typeof e.source === "string" ? new TextEncoder().encode(e.source) : e.source));
  }
  return new Directory(contents);
}

export interface P2Run {
  argv: string[];
  env: Record<string, string>;
  preopens: Record<string, FileDataEntry>;
  guard: Guard;
  stopFlag: Int32Array;
  /** The run's bound on file growth (disk-cap.ts). */
  budget: DiskBudget;
}

type Pollable = ReturnType<typeof pollableCreate>;

export function wasiP2Imports(run: P2Run): Record<(typeof PROVIDED)[number], unknown> {
  const { guard } = run;
  const sink = (capture: Guard["stdout"]) => ({
    write(buf: Uint8Array) {
      guard.check(); // a guest that loops on output is stopped here too
      capture.write(buf);
    },
  });
  const cli = createCli({
    arguments: run.argv,
    environment: run.env,
    stdout: sink(guard.stdout),
    stderr: sink(guard.stderr),
  });
  const fs = createFilesystem({ adapter: cappedAdapter(run.budget), preopens: run.preopens });

  // Clock pollables we made know their deadline (monotonic ns); any other pollable is asked `ready()`.
  const deadlines = new WeakMap<Pollable, bigint>();
  const subscribeDuration = (ns: bigint): Pollable => {
    const at = monotonicClock.now() + ns;
    const p = pollableCreate({ ready: () => monotonicClock.now() >= at, wait: () => Promise.resolve() });
    deadlines.set(p, at);
    // `pollable.block()` on the shim returns a Promise; this one blocks as the guest expects.
    Object.defineProperty(p, "block", { value: () => void pollList([p]) });
    return p;
  };
  const clock = {
    ...monotonicClock,
    subscribeDuration,
    subscribeInstant: (at: bigint) => subscribeDuration(at > monotonicClock.now() ? at - monotonicClock.now() : 0n),
  };
  /** Blocks until one of `list` is ready, in slices of at most 50 ms between two stop checks. */
  const pollList = (list: Pollable[]): Uint32Array => {
    if (list.length === 0) throw new Error("poll list must not be empty");
    for (;;) {
      guard.check();
      const ready = list.flatMap((p, i) => (p.ready() ? [i] : []));
      if (ready.length) return new Uint32Array(ready);
      const waits = list.map((p) => deadlines.get(p));
      if (waits.some((w) => w === undefined)) throw new Error("poll would block on a source this host cannot wait for");
      const now = monotonicClock.now();
      const ms = Math.min(...waits.map((w) => Number(w! - now))) / 1e6;
      // The stop flag's slot 0 is 0 while the task runs: a stop's store ends the wait at the next slice.
      Atomics.wait(run.stopFlag, 0, 0, Math.min(Math.max(ms, 0), 50));
    }
  };
  return {
    "wasi:cli/environment": cli.environment,
    "wasi:cli/exit": cli.exit,
    "wasi:cli/stdin": cli.stdin,
    "wasi:cli/stdout": cli.stdout,
    "wasi:cli/stderr": cli.stderr,
    "wasi:cli/terminal-input": cli.terminalInput,
    "wasi:cli/terminal-output": cli.terminalOutput,
    "wasi:cli/terminal-stdin": cli.terminalStdin,
    "wasi:cli/terminal-stdout": cli.terminalStdout,
    "wasi:cli/terminal-stderr": cli.terminalStderr,
    "wasi:clocks/monotonic-clock": clock,
    "wasi:clocks/wall-clock": wallClock,
    "wasi:filesystem/preopens": fs.preopens,
    "wasi:filesystem/types": fs.types,
    "wasi:io/error": error,
    "wasi:io/poll": { ...poll, poll: pollList, pollList },
    "wasi:io/streams": streams,
    "wasi:random/random": random,
    "wasi:random/insecure": insecure,
    "wasi:random/insecure-seed": insecureSeed,
  };
}
