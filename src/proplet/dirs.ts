import { realpathSync } from "node:fs";
import { inside } from "./runtime/preopen.ts";

// Which host directories a task may preopen: only those under the proplet's allow-list (PROPLET_DIRS, upstream's
// name). A task comes from whoever may call the manager; the proplet's operator decides what of its disk they see.

/**
 * An error naming the allow-list when a task asks for a directory outside it; undefined when all are allowed.
 * Each allowed directory's `host` becomes the real path that was checked: the run opens that path and refuses it
 * if it is reached through a link by then (runtime/preopen.ts), so the check and the use see one resolution.
 */
export function refusedDir(dirs: { host: string }[], allowed: string[], propletId: string): string | undefined {
  const roots = allowed.flatMap((a) => {
    try {
      return [realpathSync(a)];
    } catch {
      return [];
    }
  });
  for (const d of dirs) {
    let real: string;
    try {
      real = realpathSync(d.host);
    } catch {
      return `host directory ${d.host} does not exist on proplet ${propletId}`;
    }
    if (roots.some((r) => inside(r, real))) {
      d.host = real;
      continue;
    }
    return allowed.length
      ? `host directory ${d.host} is not under PROPLET_DIRS (${allowed.join(":")}) on proplet ${propletId}`
      : `host directory ${d.host} may not be preopened: PROPLET_DIRS is empty on proplet ${propletId}`;
  }
  return undefined;
}
