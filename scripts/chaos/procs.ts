import { closeSync, openSync } from "node:fs";
import type { Subprocess } from "bun";

// The processes the harness started, and only those: each is killed by its own pid when the harness exits,
// however it exits (other engineers run tests on this machine). Output goes to a log file per process.

const live = new Set<Subprocess>();
const stopped = new Set<number>();

export interface Started {
  proc: Subprocess;
  log: string;
}

export function start(cmd: string[], env: Record<string, string | undefined>, log: string): Started {
  const fd = openSync(log, "a");
  const proc = Bun.spawn(cmd, { env: { ...process.env, ...env }, stdin: "ignore", stdout: fd, stderr: fd });
  closeSync(fd);
  live.add(proc);
  void proc.exited.then(() => {
    live.delete(proc);
    stopped.delete(proc.pid);
  });
  return { proc, log };
}

export const running = (p: Subprocess): boolean => p.exitCode === null && p.signalCode === null;

/** Sends a signal to a process this harness started (SIGSTOP is remembered, so cleanup continues it first). */
export function signal(p: Subprocess, sig: NodeJS.Signals): void {
  if (!running(p)) return;
  if (sig === "SIGSTOP") stopped.add(p.pid);
  if (sig === "SIGCONT") stopped.delete(p.pid);
  p.kill(sig);
}

/** Kills with SIGKILL and waits for the exit. */
export async function kill9(p: Subprocess): Promise<void> {
  signal(p, "SIGKILL");
  await p.exited;
}

/** SIGTERM, then SIGKILL if it has not exited within `ms`. */
export async function terminate(p: Subprocess, ms = 8000): Promise<void> {
  if (stopped.has(p.pid)) signal(p, "SIGCONT");
  signal(p, "SIGTERM");
  const done = await Promise.race([p.exited.then(() => true), Bun.sleep(ms).then(() => false)]);
  if (!done) await kill9(p);
}

export function killAll(): void {
  for (const p of live) {
    try {
      p.kill("SIGKILL");
    } catch {}
  }
}

const cleanups: (() => void)[] = [];
/** Runs at exit, after every process is killed (PostgreSQL's pg_ctl stop, temp dirs). */
export function atExit(fn: () => void): void {
  cleanups.push(fn);
}

let exiting = false;
function cleanup(): void {
  if (exiting) return;
  exiting = true;
  killAll();
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch {}
  }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}
process.on("uncaughtException", (e) => {
  console.error(e);
  cleanup();
  process.exit(2);
});
process.on("unhandledRejection", (e) => {
  console.error(e);
  cleanup();
  process.exit(2);
});
