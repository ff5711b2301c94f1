import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { log } from "../log.ts";
import { UsageError } from "./args.ts";

// A data dir holds the database, tokens, keys and queued results: its owner's alone (issue 25). serve and proplet
// run with umask 077, so what they create is 0600/0700; a dir they did not create is checked and tightened here.

/** Files (0600) and folders (0700) are made for this process's user only, from here on. */
export function privateUmask(): void {
  process.umask(0o077);
}

/**
 * Makes `dir` (0700) or, when it exists, refuses one another user owns (its owner could read or replace the
 * database) and takes group and other permissions off it and everything in it (the database files of an older
 * serve were 0644), saying so. Links are not followed. `flag`: how the dir was given, for the error.
 */
export function ownDataDir(dir: string, flag: string): void {
  if (!existsSync(dir)) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      // A file where a parent should be (ENOTDIR) or a parent this user may not write (EACCES): said for the
      // flag, not as a bare errno line.
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        code === "ENOTDIR"
          ? "a part of the path is a file"
          : code === "EACCES"
            ? "permission denied"
            : String(e instanceof Error ? e.message : e);
      throw new UsageError(`${flag} ${dir} cannot be created: ${why}`);
    }
    return;
  }
  const st = statSync(dir);
  if (!st.isDirectory()) throw new UsageError(`${flag} ${dir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new UsageError(
      `${flag} ${dir} belongs to uid ${st.uid}, not to this process (uid ${uid}): its owner could read or replace what is kept there; chown it or use another data dir`,
    );
  }
  let tightened = 0;
  const tighten = (path: string, mode: number, want: number) => {
    if ((mode & 0o077) === 0) return;
    try {
      chmodSync(path, want);
    } catch (e) {
      throw new UsageError(
        `${path} is open to other users (mode ${(mode & 0o777).toString(8)}) and cannot be made private: ${e instanceof Error ? e.message : e}`,
      );
    }
    tightened++;
  };
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const s = lstatSync(path);
      if (s.isSymbolicLink()) continue;
      if (s.isDirectory()) {
        tighten(path, s.mode, 0o700);
        walk(path);
      } else tighten(path, s.mode, 0o600);
    }
  };
  const mode = st.mode;
  tighten(dir, mode, 0o700);
  walk(dir);
  if (tightened > 0) {
    log.warn(
      `data dir ${dir} (mode ${(mode & 0o777).toString(8)}): ${tightened} item(s) were open to other users, now private (folders 0700, files 0600)`,
    );
  }
}

/** Copies of the database a `backup --data-dir` of an older store left behind when it was killed (cli/backup.ts). */
export function removeStaleCopies(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (/^\.migrated-copy-[\w-]+$/.test(name)) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * An id kept in the data dir across restarts: the local proplet's (its history and pinned tasks stay valid) and
 * the manager's lease holder's.
 */
export function stableId(dataDir: string, name: string): string {
  const kept = keptId(dataDir, name);
  if (kept) return kept;
  const id = crypto.randomUUID();
  writeFileSync(join(dataDir, name), id);
  return id;
}

/** The id kept in the data dir under `name`, if there is one (nothing is made). */
export function keptId(dataDir: string, name: string): string | undefined {
  const f = join(dataDir, name);
  return existsSync(f) ? readFileSync(f, "utf8").trim() || undefined : undefined;
}

/** Where serve keeps its local proplet's id (local-proplet.ts; named in its archives, put back by `restore`). */
export const LOCAL_PROPLET_ID_FILE = "local-proplet-id";
