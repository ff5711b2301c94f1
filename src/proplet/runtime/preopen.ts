import {
  constants as C,
  closeSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  writeSync,
} from "node:fs";
import { sep } from "node:path";
import { Directory, File, type Inode } from "@bjorn3/browser_wasi_shim";

// A preopened host directory is loaded into the guest's in-memory tree and written back at exit: the guest cannot
// reach any host path outside it, `..` included. The path is resolved once: the directory is opened and its
// handle's own path must be the one given (a real path, checked against PROPLET_DIRS by the proplet); everything
// below is reached from that handle, one name at a time, never through a symbolic link (`/proc/self/fd/N/NAME`
// with O_NOFOLLOW, Linux's openat): a link is a missing file to the guest, and a directory swapped for a link
// while the task runs is refused, at load and at write-back. A regular file with more than one hard link may be
// the other name of a file outside the tree: the run is refused rather than reading or writing it. Files are
// written back when their content hash changed (the guest may write in place), or when they are new.

export const MAX_PREOPEN_BYTES = 256 << 20;
/** Directories below a preopen's root that are loaded: each level holds a descriptor while it is read. */
export const MAX_PREOPEN_DEPTH = 64;

const digest = (b: Uint8Array) => Bun.hash(b);
const at = (fd: number, name: string) => `/proc/self/fd/${fd}/${name}`;
const DIR = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

export interface Preopen {
  /** The directory's real path, as given. */
  root: string;
  /** Its identity when loaded: write-back goes only into that same directory. */
  dev: bigint;
  ino: bigint;
  tree: Map<string, Inode>;
  /** Hash and size of every file as loaded, by path below the root. */
  hashes: Map<string, bigint | number>;
  sizes: Map<string, number>;
  /** Bytes loaded. */
  bytes: number;
}

/** True when `path` (resolved) is `root` or below it. */
export function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

class PreopenError extends Error {}

/** Opens `root` as a directory handle whose path is exactly `root`: no link anywhere on the way. */
function openRoot(root: string): { fd: number; dev: bigint; ino: bigint } {
  let fd: number;
  try {
    fd = openSync(root, DIR);
  } catch (e) {
    let link = false;
    try {
      link = lstatSync(root).isSymbolicLink();
    } catch {}
    if (link) throw new PreopenError(`preopened directory ${root} is a symbolic link: refused`);
    throw new PreopenError(`preopened directory ${root}: ${(e as Error).message}`);
  }
  const real = readlinkSync(`/proc/self/fd/${fd}`);
  if (real !== root) {
    closeSync(fd);
    throw new PreopenError(
      `preopened directory ${root} is reached through a symbolic link (it is ${real}): give its real path`,
    );
  }
  const st = fstatSync(fd, { bigint: true });
  return { fd, dev: st.dev, ino: st.ino };
}

/** A child directory's handle, never through a link. */
function openDir(parent: number, name: string): number {
  return openSync(at(parent, name), DIR);
}

const hardLinked = (root: string, rel: string, n: bigint) =>
  new PreopenError(
    `${root}/${rel} has ${n} hard links: a preopened file may be another name of a file outside the directory, so it is refused`,
  );

function readAll(fd: number, size: number): Uint8Array {
  const data = new Uint8Array(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, data, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return off === size ? data : data.subarray(0, off);
}

export function loadPreopen(host: string, budget: { left: number }): Preopen {
  const root = openRoot(host);
  const hashes = new Map<string, bigint | number>();
  const sizes = new Map<string, number>();
  let bytes = 0;
  const load = (dirFd: number, rel: string, depth: number): Map<string, Inode> => {
    const out = new Map<string, Inode>();
    for (const name of readdirSync(`/proc/self/fd/${dirFd}`)) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(at(dirFd, name), { bigint: true });
      if (st.isDirectory()) {
        if (depth >= MAX_PREOPEN_DEPTH)
          throw new PreopenError(`${host}/${path} is deeper than ${MAX_PREOPEN_DEPTH} directories`);
        const fd = openDir(dirFd, name);
        try {
          out.set(name, new Directory(load(fd, path, depth + 1)));
        } finally {
          closeSync(fd);
        }
      } else if (st.isFile()) {
        // O_NONBLOCK: a FIFO put there in the meantime does not hang the run; fstat says what was opened.
        const fd = openSync(at(dirFd, name), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
        try {
          const f = fstatSync(fd, { bigint: true });
          if (!f.isFile()) continue;
          if (f.nlink > 1n) throw hardLinked(host, path, f.nlink);
          budget.left -= Number(f.size);
          if (budget.left < 0)
            throw new PreopenError(`preopened directory ${host} holds more than ${MAX_PREOPEN_BYTES >> 20} MiB`);
          const data = readAll(fd, Number(f.size));
          bytes += data.length;
          hashes.set(path, digest(data));
          sizes.set(path, data.length);
          out.set(name, new File(data));
        } finally {
          closeSync(fd);
        }
      } // a symbolic link, a socket, a device: not given to the guest
    }
    return out;
  };
  try {
    const tree = load(root.fd, "", 0);
    return { root: host, dev: root.dev, ino: root.ino, tree, hashes, sizes, bytes };
  } finally {
    closeSync(root.fd);
  }
}

/** Every preopened directory of a run, loaded within one budget: together they hold at most MAX_PREOPEN_BYTES. */
export function loadPreopens<D extends { host: string }>(dirs: D[]): (D & { loaded: Preopen })[] {
  const budget = { left: MAX_PREOPEN_BYTES };
  return dirs.map((d) => ({ ...d, loaded: loadPreopen(d.host, budget) }));
}

/**
 * What a run's write-back may write in all: what it loaded (rewritten in place) and its disk bound. A name a guest
 * linked to a file is a whole file on the host: without this, one 60 MiB file linked 1,000 times would be 60 GB.
 */
export function writeBackLimit(preopens: { loaded: Preopen }[], maxBytes: number): { left: number } {
  return { left: maxBytes + preopens.reduce((n, p) => n + p.loaded.bytes, 0) };
}

/**
 * Writes the guest's changes back into the directory that was loaded, never through a link, never into a file
 * with another hard link, and no more than `limit` bytes. Returns what was refused (the rest is written).
 */
export function savePreopen(p: Preopen, dir: Directory, limit: { left: number }): string[] {
  const refused: string[] = [];
  let root: ReturnType<typeof openRoot>;
  try {
    root = openRoot(p.root);
  } catch (e) {
    return [(e as Error).message];
  }
  if (root.dev !== p.dev || root.ino !== p.ino) {
    closeSync(root.fd);
    return [`preopened directory ${p.root} was replaced while the task ran: nothing written back`];
  }
  const lst = (dirFd: number, name: string) => {
    try {
      return lstatSync(at(dirFd, name), { bigint: true });
    } catch {
      return undefined;
    }
  };
  const save = (dirFd: number, rel: string, d: Directory) => {
    for (const [name, inode] of d.contents) {
      if (name === "." || name === ".." || name.includes("/") || name.includes("\0")) continue;
      const path = rel ? `${rel}/${name}` : name;
      const st = lst(dirFd, name);
      if (st?.isSymbolicLink()) continue;
      try {
        if (inode instanceof Directory) {
          if (st && !st.isDirectory()) continue;
          if (!st) mkdirSync(at(dirFd, name)); // mkdir never follows a link in its last component
          const fd = openDir(dirFd, name);
          try {
            save(fd, path, inode);
          } finally {
            closeSync(fd);
          }
        } else if (inode instanceof File) {
          if (st && !st.isFile()) continue;
          if (p.hashes.get(path) === digest(inode.data)) continue;
          // Only added to (a log, a ledger): the new bytes are appended to the file as it is now, so runs that
          // append at once each keep their lines (a whole-file write-back kept the last run's alone). A file this
          // run made that another made meanwhile is added to as well.
          const loaded = p.sizes.get(path) ?? 0;
          const appended =
            st !== undefined &&
            inode.data.length > loaded &&
            (!p.sizes.has(path) || digest(inode.data.subarray(0, loaded)) === p.hashes.get(path));
          const bytes = appended ? inode.data.subarray(loaded) : inode.data;
          if (bytes.length > limit.left) {
            refused.push(`${p.root}/${path}: over the run's disk bound`);
            continue;
          }
          limit.left -= bytes.length;
          const flags = !st
            ? C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW
            : C.O_WRONLY | C.O_NOFOLLOW | C.O_NONBLOCK | (appended ? C.O_APPEND : 0);
          const fd = openSync(at(dirFd, name), flags, 0o666);
          try {
            const f = fstatSync(fd, { bigint: true });
            if (!f.isFile()) continue;
            if (f.nlink > 1n) {
              refused.push(hardLinked(p.root, path, f.nlink).message);
              continue;
            }
            if (!appended) ftruncateSync(fd, 0);
            for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
          } finally {
            closeSync(fd);
          }
        }
      } catch (e) {
        refused.push(`${p.root}/${path}: ${(e as Error).message}`);
      }
    }
  };
  try {
    save(root.fd, "", dir);
  } finally {
    closeSync(root.fd);
  }
  return refused;
}

/** The run's error when write-back refused something. */
export function notWrittenBack(refused: string[]): string | undefined {
  if (!refused.length) return undefined;
  const more = refused.length > 3 ? `; and ${refused.length - 3} more` : "";
  return `not written back: ${refused.slice(0, 3).join("; ")}${more}`;
}
