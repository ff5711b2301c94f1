import { beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { b64, http, ROOT, runTask, startServe } from "../helpers.ts";

// Release builds: both Linux binaries from one machine, their checksums, the stamped version, and the arm64
// binary running serve and a task under Debian's qemu-user-static.

const dist = join(ROOT, "dist");
let commit: string;

beforeAll(() => {
  const build = Bun.spawnSync([process.execPath, join(ROOT, "scripts/build.ts"), "--target", "linux-x64,linux-arm64"]);
  if (build.exitCode !== 0) throw new Error(`release build failed: ${build.stderr.toString()}`);
  commit = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: ROOT }).stdout.toString().trim();
}, 180_000);

test("both binaries and SHA256SUMS; version, commit and build time stamped in", () => {
  const sums = readFileSync(join(dist, "SHA256SUMS"), "utf8").trim().split("\n");
  expect(sums.map((l) => l.split("  ")[1])).toEqual(["propeller-linux-x64", "propeller-linux-arm64"]);
  for (const line of sums) {
    const [sum, file] = line.split("  ");
    expect(
      createHash("sha256")
        .update(readFileSync(join(dist, file!)))
        .digest("hex"),
    ).toBe(sum!);
  }
  const v = Bun.spawnSync([join(dist, "propeller-linux-x64"), "--version"]).stdout.toString();
  expect(v).toMatch(new RegExp(`^\\d+\\.\\d+\\.\\d+ \\(commit ${commit}, built \\d{4}-\\d\\d-\\d\\dT`));
});

test("the arm64 binary under qemu: --version, then serve on kv (arm64's LMDB addon) running a task", async () => {
  const qemu = Bun.which("qemu-aarch64-static") ?? "/usr/bin/qemu-aarch64-static";
  const arm = [qemu, join(dist, "propeller-linux-arm64")];
  const v = Bun.spawnSync([...arm, "--version"]);
  if (v.exitCode !== 0) {
    throw new Error(
      `qemu could not run the arm64 binary (apt-get install qemu-user-static libc6:arm64 libstdc++6:arm64): ${v.stderr}`,
    );
  }
  expect(v.stdout.toString()).toContain(`commit ${commit}`);
  const extra = ["--liveliness-interval", "1", "--storage", "kv"];
  const s = await startServe({ cmd: arm, extra, healthTimeoutMs: 60_000 });
  try {
    const h = (await http(`${s.url}/health`)).body;
    expect(h).toMatchObject({ status: "pass", commit, storage: "kv" });
    const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [40, 2] }, 60_000);
    expect(t).toMatchObject({ state: 3, results: "42" });
  } finally {
    await s.kill("SIGKILL");
  }
}, 120_000);
