import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./helpers.ts";

/**
 * The README's quick start ("Run a task with the CLI" and the sh block after it), run as written by bash in a
 * fresh directory against a serve, with `P` set to `propeller` (this checkout's source, or the compiled binary;
 * paths without spaces). Returns the block, the outcome, and the outputs its `# → X` comments promise.
 */
export function walkQuickStart(propeller: string, env: Record<string, string>) {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const from = readme.indexOf("Run a task with the CLI");
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(from))![1]!;
  if (!block.includes('P="npx bun src/main.ts"')) throw new Error("the quick start no longer sets P as this expects");
  const r = Bun.spawnSync(
    ["bash", "-euo", "pipefail", "-c", block.replace('P="npx bun src/main.ts"', `P="${propeller}"`)],
    {
      cwd: tempDir(),
      env: { ...process.env, ...env },
    },
  );
  const promised = [...block.matchAll(/# → (.+)$/gm)].map((m) => m[1]!.trim());
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString(), promised };
}

/** Whether every promised output is a line of `out`, in order. */
export function inOrder(out: string, promised: string[]): boolean {
  let at = 0;
  for (const p of promised) {
    const i = out.indexOf(`${p}\n`, at);
    if (i < 0 || (i > 0 && out[i - 1] !== "\n")) return false;
    at = i + p.length;
  }
  return true;
}
