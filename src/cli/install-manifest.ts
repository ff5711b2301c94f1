import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

// What `propeller install` created, so that `uninstall --purge` removes exactly that and nothing else.
// The manifest (/etc/propeller/install.json) lists every path install made (directories it had to create,
// the binary, the settings file, each unit file) and the system user, each either owned by one unit (its unit
// file) or shared (everything else), plus the units installed now. Purging a unit removes its own entries and
// its state; shared entries go only with the last unit. A unit's state is derived strictly from the fixed
// layout: the proplet's is DATA/proplet, serve's is everything else in DATA — so serve's purge never touches
// the proplet unit's state. Directories are removed only when empty: whatever the operator put there stays.

export const MANIFEST = "/etc/propeller/install.json";

export interface Entry {
  kind: "dir" | "file" | "user";
  /** A path inside the root, or the user's name. */
  path: string;
  /** The unit owning it; shared when absent. */
  unit?: string;
}

export interface Manifest {
  units: string[];
  created: Entry[];
}

export function readManifest(at: (p: string) => string): Manifest | undefined {
  const file = at(MANIFEST);
  if (!existsSync(file)) return undefined;
  const m = JSON.parse(readFileSync(file, "utf8")) as Partial<Manifest>;
  if (!Array.isArray(m.units) || !Array.isArray(m.created)) throw new Error(`${file}: not an install manifest`);
  return { units: m.units, created: m.created };
}

export function writeManifest(at: (p: string) => string, m: Manifest): void {
  writeFileSync(at(MANIFEST), `${JSON.stringify(m, null, 2)}\n`, { mode: 0o644 });
}

export function record(m: Manifest, e: Entry): void {
  if (!m.created.some((c) => c.kind === e.kind && c.path === e.path)) m.created.push(e);
}

/**
 * The directories between `/` and `path` (inside the root) that do not exist yet, outermost first. Install
 * makes these 0755 (the leaf takes its own mode) and leaves every existing one as it is.
 */
export function missingDirs(at: (p: string) => string, path: string): string[] {
  const missing: string[] = [];
  for (let p = path; p !== "/" && p !== "."; p = dirname(p)) {
    if (existsSync(at(p))) break;
    missing.unshift(p);
  }
  return missing;
}

/** Makes the missing directories (0755, `leafMode` for `path` itself) and records them as shared. */
export function makeDirs(at: (p: string) => string, m: Manifest, path: string, leafMode = 0o755): void {
  for (const d of missingDirs(at, path)) {
    const mode = d === path ? leafMode : 0o755;
    mkdirSync(at(d), { mode });
    chmodSync(at(d), mode); // the umask would otherwise narrow it
    record(m, { kind: "dir", path: d });
  }
}

/** The state a unit keeps in the data dir: the proplet's own subdirectory, or the rest of it for serve. */
export function unitState(at: (p: string) => string, data: string, proplet: boolean): string[] {
  if (proplet) return existsSync(at(join(data, "proplet"))) ? [join(data, "proplet")] : [];
  if (!existsSync(at(data))) return [];
  return readdirSync(at(data))
    .filter((n) => n !== "proplet")
    .map((n) => join(data, n));
}

/** Removes a created directory when empty; says why it stays otherwise. */
export function removeDirIfEmpty(at: (p: string) => string, path: string): string | undefined {
  const full = at(path);
  if (!existsSync(full)) return undefined;
  const left = readdirSync(full);
  if (left.length > 0) return `keep ${full} (holds ${left.slice(0, 3).join(", ")}${left.length > 3 ? ", …" : ""})`;
  rmdirSync(full);
  return undefined;
}

export function removeFile(at: (p: string) => string, path: string): void {
  rmSync(at(path), { force: true });
}
