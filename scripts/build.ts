// `npm run build`: one executable, dist/propeller, that runs every subcommand with no node_modules beside it.
// The pool's worker is a second entrypoint: Bun bundles it into the executable (see Bun's "Worker" docs).
import { rmSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const out = join(root, "dist", "propeller");
rmSync(out, { force: true });
const t0 = performance.now();
const result = await Bun.build({
  entrypoints: [join(root, "src/main.ts"), join(root, "src/proplet/runtime/worker.ts")],
  compile: { outfile: out },
  minify: true,
});
if (!result.success) {
  for (const m of result.logs) console.error(m);
  process.exit(1);
}
const size = Bun.file(out).size;
console.log(`built ${out} (${(size / 1e6).toFixed(1)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
