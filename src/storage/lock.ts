import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { statFields } from "../core/procstat.ts";

// One owner per data dir: a `lock` file holding the owner's PID and its start time. A second serve (or proplet)
// on the same dir exits at once naming the holder; a lock left by a killed process is recognised (its PID is
// gone, is a zombie, or now belongs to a process that started later) and taken over.

export class DirInUse extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
    what: string,
  ) {
    super(`${dir} is in use by ${what} (PID ${pid}): stop it first, or use another data dir`);
  }
}

function stat(pid: number): string[] | undefined {
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** A process's start time in clock ticks since boot (Linux), so a reused PID is not taken for the old owner. */
function startTime(pid: number): string | undefined {
  return stat(pid)?.[19];
}

function alive(pid: number, started: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, but another user's
  }
  const fields = stat(pid);
  // A zombie (state Z: killed, not yet reaped by its parent) answers kill(0) but holds nothing: it has exited.
  if (fields?.[0] === "Z" || fields?.[0] === "X") return false;
  const now = fields?.[19];
  return started === undefined || now === undefined || now === started;
}

/** The holder of the dir's lock, if a live process holds it. */
export function lockHolder(dir: string): { pid: number; what: string } | undefined {
  const file = join(dir, "lock");
  if (!existsSync(file)) return undefined;
  const [pid, started, what] = readFileSync(file, "utf8").trim().split(" ");
  const n = Number(pid);
  return Number.isInteger(n) && n > 0 && n !== process.pid && alive(n, started)
    ? { pid: n, what: what ?? "a process" }
    : undefined;
}

const describeCode = (code: string) =>
  ({ EROFS: "read-only file system", EACCES: "permission denied", EPERM: "not permitted", ENOSPC: "no space left" })[
    code
  ] ?? code;

/** The lock a restore holds: left behind (its process gone), it says the restore did not finish. */
export const RESTORE_LOCK = "restore";

/** A store a restore wrote part of, and was stopped in (kill -9, power cut): nothing but a restore may open it. */
export class UnfinishedRestore extends Error {
  constructor(readonly dir: string) {
    super(
      `${dir} holds a restore that did not finish (it was stopped before its end): restore again into it with --force (propeller restore FILE --data-dir ${dir} --force), or use another data dir`,
    );
  }
}

/** A restore into the dir was stopped before its end (its lock is left, and its process gone). */
export function restoreUnfinished(dir: string): boolean {
  return staleWhat(dir) === RESTORE_LOCK && !lockHolder(dir);
}

/** What a lock left by a process that is gone was taken for ("serve", "restore"), if one is left. */
function staleWhat(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, "lock"), "utf8").trim().split(" ")[2];
  } catch {
    return undefined;
  }
}

/**
 * Takes the dir's lock for this process (`what`: "serve", "proplet"); throws DirInUse when another holds it, and
 * UnfinishedRestore when a restore's lock was left (only a restore takes it over: `unfinishedRestore` then says so).
 */
export function lockDir(dir: string, what: string): { release(keepFile?: boolean): void; unfinishedRestore: boolean } {
  const file = join(dir, "lock");
  let unfinishedRestore = false;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, `${process.pid} ${startTime(process.pid) ?? "-"} ${what}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Said as what it means for the dir (it was a bare "EROFS: read-only file system, open '…/lock'").
      if (code === "EROFS" || code === "EACCES" || code === "EPERM" || code === "ENOSPC")
        throw new Error(
          `${what}'s data dir ${dir} cannot be written (${code}: ${describeCode(code)}): give one it can write`,
        );
      if (code !== "EEXIST" || attempt > 0) throw e;
      const holder = lockHolder(dir);
      if (holder) throw new DirInUse(dir, holder.pid, holder.what);
      // Stale: its process is gone. A restore's stays until a restore finishes: the store is part of an archive.
      if (staleWhat(dir) === RESTORE_LOCK) {
        if (what !== RESTORE_LOCK) throw new UnfinishedRestore(dir);
        unfinishedRestore = true;
      }
      unlinkSync(file);
    }
  }
  let held = true;
  return {
    unfinishedRestore,
    // keepFile: left in place, to be found stale once this process is gone (an unfinished restore's mark).
    release: (keepFile = false) => {
      if (!held) return;
      held = false;
      if (keepFile) return;
      try {
        if (readFileSync(file, "utf8").startsWith(`${process.pid} `)) unlinkSync(file);
      } catch {
        // already gone
      }
    },
  };
}
