import pkg from "../package.json" with { type: "json" };

// What this build is. `npm run build` stamps the commit and the build time in (scripts/build.ts defines them);
// run from source, they say so.
declare const PROPELLER_COMMIT: string | undefined;
declare const PROPELLER_BUILD_TIME: string | undefined;

export const VERSION: string = pkg.version;
export const COMMIT: string = typeof PROPELLER_COMMIT === "string" ? PROPELLER_COMMIT : "source";
export const BUILD_TIME: string = typeof PROPELLER_BUILD_TIME === "string" ? PROPELLER_BUILD_TIME : "unbuilt";
