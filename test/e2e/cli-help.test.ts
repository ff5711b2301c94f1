import { expect, test } from "bun:test";
import type { CommandDef } from "citty";
import { main } from "../../src/cli/commands.ts";
import { MAIN } from "../helpers.ts";

// `--help` and `-h` on the root, on every group and on every leaf: help on stdout, exit 0. The commands come from
// the command tree itself (src/cli/commands.ts), so a new command is covered without touching this test.

type Cmd = CommandDef;
const resolve = async <T>(v: unknown): Promise<T | undefined> =>
  (typeof v === "function" ? await (v as () => T)() : await v) as T | undefined;

async function paths(cmd: Cmd, at: string[] = []): Promise<string[][]> {
  const subs = await resolve<Record<string, unknown>>(cmd.subCommands);
  const out = [at];
  for (const [name, sub] of Object.entries(subs ?? {}))
    out.push(...(await paths((await resolve<Cmd>(sub))!, [...at, name])));
  return out;
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([process.execPath, MAIN, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}

test("--help and -h print usage and exit 0 on the root, every group and every leaf; file/id commands show examples", async () => {
  const all = await paths(main);
  expect(all.length).toBeGreaterThan(50); // the tree was walked, not just the root
  const cases = all.flatMap((p) => [
    [...p, "--help"],
    [...p, "-h"],
  ]);
  const failures: string[] = [];
  // A few at a time: each is a real process.
  for (let i = 0; i < cases.length; i += 6) {
    await Promise.all(
      cases.slice(i, i + 6).map(async (args) => {
        const r = await run(args);
        const path = args.slice(0, -1);
        const usage = `USAGE ${["propeller", ...path].join(" ")}`;
        if (r.code !== 0 || !r.stdout.includes(usage) || r.stderr !== "")
          failures.push(`${args.join(" ")}: exit ${r.code}, stderr ${JSON.stringify(r.stderr.slice(0, 200))}`);
        // A command that takes an id or a file shows how.
        if (/ARGUMENTS[\s\S]*\b(ID|FILE)\b/.test(r.stdout) && !r.stdout.includes("EXAMPLES"))
          failures.push(`${args.join(" ")}: takes an id or a file but shows no EXAMPLES`);
      }),
    );
  }
  expect(failures).toEqual([]);
}, 300_000);

test("the root's help says how to get shell completion, and the script it names works", async () => {
  const help = await run(["--help"]);
  expect(help.stdout).toContain("source <(propeller completion bash)");
  const script = await run(["completion", "bash"]);
  expect(script.code).toBe(0);
  expect(script.stdout).toContain("propeller __complete");
  expect((await run(["__complete", "tasks", "cr"])).stdout).toBe("create\n");
});

test("help comes before anything else: a --help after a wrong value or missing argument is still help", async () => {
  const r = await run(["tasks", "get", "--help"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("USAGE propeller tasks get");
  const serve = await run(["serve", "--http-port", "nope", "-h"]);
  expect(serve.code).toBe(0);
  expect(serve.stdout).toContain("USAGE propeller serve");
});
