import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, sep } from "node:path";
import { Directory, File, type Inode } from "@bjorn3/browser_wasi_shim";

// A preopened host directory is loaded into the guest's in-memory tree and written back at exit: the guest cannot
// reach any host path outside it, `..` included. Symbolic links are followed only when they stay inside the tree
// (one leading out, or nowhere, is left out: a missing file to the guest), and nothing is ever written through a
// link. Files are written back when their content hash changed (the guest may write in place), or when they are new.

export const MAX_PREOPEN_BYTES = 256 << 20;

const digest = (b: Uint8Array) => Bun.hash(b);

export interface Preopen {
  root: string;
  tree: Map<string, Inode>;
  /** Hash of every file as loaded, by host path. */
  hashes: Map<string, bigint | number>;
}

/** True when `path` (resolved) is `root` or below it. */
export function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

export function loadPreopen(host: string, budget: { left: number }): Preopen {
  const root = realpathSync(host);
  const hashes = new Map<string, bigint | number>();
  const seen = new Set<string>([root]);
  const load = (dir: string): Map<string, Inode> => {
    const out = new Map<string, Inode>();
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      let target = p;
      if (lstatSync(p).isSymbolicLink()) {
        try {
          target = realpathSync(p);
        } catch {
          continue; // dangling: just a missing file
        }
        if (!inside(root, target)) continue; // leads out of the tree
      }
      const st = statSync(target);
      if (st.isDirectory()) {
        if (seen.has(target)) continue; // a link back up the tree would never end
        seen.add(target);
        out.set(name, new Directory(load(target)));
      } else if (st.isFile()) {
        budget.left -= st.size;
        if (budget.left < 0)
          throw new Error(`preopened directory ${host} holds more than ${MAX_PREOPEN_BYTES >> 20} MiB`);
        const data = readFileSync(target);
        hashes.set(p, digest(data));
        out.set(name, new File(data));
      }
    }
    return out;
  };
  return { root, tree: load(root), hashes };
}

/** Every preopened directory of a run, loaded within one budget: together they hold at most MAX_PREOPEN_BYTES. */
export function loadPreopens<D extends { host: string }>(dirs: D[]): (D & { loaded: Preopen })[] {
  const budget = { left: MAX_PREOPEN_BYTES };
  return dirs.map((d) => ({ ...d, loaded: loadPreopen(d.host, budget) }));
}

/** Writes the guest's changes back, never through a link and never outside the tree. */
export function savePreopen(p: Preopen, dir: Directory): void {
  const save = (host: string, d: Directory) => {
    for (const [name, inode] of d.contents) {
      if (name === "." || name === ".." || name.includes("/")) continue;
      const path = join(host, name);
      const st = existsSync(path) || isLink(path) ? lstatSync(path) : undefined;
      if (st?.isSymbolicLink()) continue;
      if (inode instanceof Directory) {
        if (st && !st.isDirectory()) continue;
        if (!st) mkdirSync(path);
        save(path, inode);
      } else if (inode instanceof File) {
        if (st && !st.isFile()) continue;
        if (p.hashes.get(path) !== digest(inode.data)) writeFileSync(path, inode.data);
      }
    }
  };
  save(p.root, dir);
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
