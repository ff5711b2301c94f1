// `npm run build`: one executable, dist/propeller, that runs every subcommand with no node_modules beside it.
// `npm run build -- --target linux-x64,linux-arm64` cross-compiles release binaries instead
// (dist/propeller-linux-x64, dist/propeller-linux-arm64; Bun fetches the other runtime from the npm registry) and
// writes dist/SHA256SUMS. Version, commit and build time are stamped in (`--version`, `/health`).
// The pool's worker, jco's, the compile thread's and SQLite's checkpoint thread's are entrypoints too: Bun bundles them into the executable (see Bun's "Worker" docs).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type { BunPlugin } from "bun";

const TARGETS = ["linux-x64", "linux-arm64"] as const;
type Target = (typeof TARGETS)[number];

const { values: opt } = parseArgs({ options: { target: { type: "string" } } });
const targets = (opt.target ?? "").split(",").filter(Boolean) as Target[];
const bad = targets.filter((t) => !TARGETS.includes(t));
if (bad.length) {
  console.error(`unknown --target ${bad.join(", ")} (use ${TARGETS.join(", ")})`);
  process.exit(2);
}

const root = join(import.meta.dir, "..");
const git = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root, stderr: "ignore" });
const commit = git.exitCode === 0 ? git.stdout.toString().trim() : "unknown";
const buildTime = new Date().toISOString();
mkdirSync(join(root, "dist"), { recursive: true });

/**
 * LMDB's native addon for the target (the kv storage backend). lmdb finds it at run time by searching
 * node_modules, which a single executable does not have: the build rewrites that search into a require of the
 * addon's file, which Bun then embeds. npm installs the addon of this machine only; another target's comes from
 * the npm registry (`npm pack`), cached in dist/.addons.
 */
async function lmdbAddon(target: Target | undefined): Promise<string> {
  const arch = target ? target.split("-")[1]! : process.arch;
  const pkg = `@lmdb/lmdb-linux-${arch}`;
  const local = join(root, "node_modules", pkg, "node.napi.glibc.node");
  if (existsSync(local)) return local;
  const version = JSON.parse(readFileSync(join(root, "node_modules", "lmdb", "package.json"), "utf8")).version;
  const dir = join(root, "dist", ".addons", `lmdb-linux-${arch}-${version}`);
  const file = join(dir, "package", "node.napi.glibc.node");
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const pack = Bun.spawnSync(["npm", "pack", `${pkg}@${version}`, "--silent"], { cwd: dir, stderr: "inherit" });
  const tgz = pack.stdout.toString().trim().split("\n").at(-1);
  if (pack.exitCode !== 0 || !tgz) throw new Error(`npm pack ${pkg}@${version} failed`);
  const tar = Bun.spawnSync(["tar", "-xzf", tgz], { cwd: dir, stderr: "inherit" });
  if (tar.exitCode !== 0 || !existsSync(file)) throw new Error(`${pkg}@${version} has no ${basename(file)}`);
  return file;
}

function lmdbPlugin(addon: string): BunPlugin {
  return {
    name: "lmdb-addon",
    setup(b) {
      b.onLoad({ filter: /[\\/]lmdb[\\/]native\.js$/ }, async (args) => {
        const text = await Bun.file(args.path).text();
        const patched = text.replace("loadNAPI(dirName)", `require(${JSON.stringify(addon)})`);
        if (patched === text) throw new Error(`${args.path} changed: loadNAPI(dirName) not found`);
        return { contents: patched, loader: "js" };
      });
    },
  };
}

/**
 * jco (Wasm components) loads its own core modules at run time from files beside its JS
 * (`new URL("./x.core.wasm", import.meta.url)`), which a single executable does not have: the build turns each
 * into an import of the file, which Bun embeds and resolves to its path inside the executable.
 */
function jcoPlugin(): BunPlugin {
  return {
    name: "jco-core-wasm",
    setup(b) {
      b.onLoad({ filter: /jco-transpile[\\/]vendor[\\/][^\\/]+\.js$/ }, async (args) => {
        const files: string[] = [];
        const text = (await Bun.file(args.path).text()).replace(
          /new URL\('\.\/([\w.-]+\.wasm)', import\.meta\.url\)/g,
          (_, name: string) => `__jco_wasm_${files.push(name) - 1}`,
        );
        if (files.length === 0) throw new Error(`${args.path} changed: no core module URLs found`);
        const imports = files.map(
          (f, i) => `import __jco_wasm_${i} from ${JSON.stringify(join(dirname(args.path), f))} with { type: "file" };`,
        );
        return { contents: `${imports.join("\n")}\n${text}`, loader: "js" };
      });
    },
  };
}

async function build(outfile: string, target?: Target): Promise<void> {
  rmSync(outfile, { force: true });
  const t0 = performance.now();
  const result = await Bun.build({
    entrypoints: [
      join(root, "src/main.ts"),
      join(root, "src/proplet/runtime/worker.ts"),
      join(root, "src/proplet/runtime/transpile-worker.ts"),
      join(root, "src/proplet/runtime/compile-worker.ts"),
      join(root, "src/storage/sqlite/checkpoint-worker.ts"),
    ],
    compile: target ? { outfile, target: `bun-${target}` } : { outfile },
    minify: true,
    bytecode: true,
    format: "esm",
    define: { PROPELLER_COMMIT: JSON.stringify(commit), PROPELLER_BUILD_TIME: JSON.stringify(buildTime) },
    plugins: [lmdbPlugin(await lmdbAddon(target)), jcoPlugin()],
  });
  if (!result.success) {
    for (const m of result.logs) console.error(m);
    process.exit(1);
  }
  const mb = (Bun.file(outfile).size / 1e6).toFixed(1);
  console.log(`built ${outfile} (${mb} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (targets.length === 0) await build(join(root, "dist", "propeller"));
else {
  const sums: string[] = [];
  for (const t of targets) {
    const out = join(root, "dist", `propeller-${t}`);
    await build(out, t);
    sums.push(`${createHash("sha256").update(readFileSync(out)).digest("hex")}  ${basename(out)}`);
  }
  writeFileSync(join(root, "dist", "SHA256SUMS"), `${sums.join("\n")}\n`);
  console.log(`wrote ${join(root, "dist", "SHA256SUMS")}`);
}
