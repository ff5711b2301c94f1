import { MAIN } from "./helpers.ts";

// The CLI as a real process for the e2e tests of the CLI (test/e2e/cli-ops.test.ts, cli-drain.test.ts, basics).

/** The CLI as a real process, awaited without blocking this process (a fake manager here must answer it). */
export async function run(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn([process.execPath, MAIN, ...args], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}
