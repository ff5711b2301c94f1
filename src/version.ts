import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };

// What this build is: package.json's version and the commit it was built from. `npm run build` stamps the commit
// and the build time in (scripts/build.ts defines them); run from source, the commit is read from git (the
// checkout this file is in), "unknown" outside one (the build time then says "unbuilt").
declare const PROPELLER_COMMIT: string | undefined;
declare const PROPELLER_BUILD_TIME: string | undefined;

function sourceCommit(): string {
  try {
    const git = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], {
      cwd: join(import.meta.dir, ".."),
      stdout: "pipe",
      stderr: "ignore",
    });
    const commit = git.exitCode === 0 ? git.stdout.toString().trim() : "";
    return commit || "unknown";
  } catch {
    return "unknown";
  }
}

export const VERSION: string = pkg.version;
export const COMMIT: string = typeof PROPELLER_COMMIT === "string" ? PROPELLER_COMMIT : sourceCommit();
export const BUILD_TIME: string = typeof PROPELLER_BUILD_TIME === "string" ? PROPELLER_BUILD_TIME : "unbuilt";
/** This program in one phrase, for messages that compare versions (a newer schema, an archive's origin). */
export const PROGRAM = `propeller ${VERSION} (commit ${COMMIT})`;
