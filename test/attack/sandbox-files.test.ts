import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { b64, http, runTask, startRunning, tempDir, until, untilEnded } from "../helpers.ts";
import {
  allowed,
  DISK_MB,
  outside,
  procs,
  rssKb,
  s,
  sandbox,
  startSandboxSite,
  stopSandboxSite,
} from "../sandbox-site.ts";

// Task sandbox attacks on a guest's files (issue 25), against a real serve and real proplets, one running
// each task as a child process (PROPLET_RUNTIME=host), one in worker threads (test/sandbox-site.ts): sizes past the
// disk bound, hard links, symlinks and FIFOs in a preopen, a preopen swapped while the task runs, links a guest
// makes. The host runtime's child process and the FL key are sandbox.test.ts.

beforeAll(startSandboxSite);
afterAll(stopSandboxSite);

describe("a guest's files", () => {
  test("ftruncate to 4 GiB, fd_allocate and a write at 2^40 are refused; memory stays bounded; tasks still run", async () => {
    for (const id of ["sb-threads", "sb-host"]) {
      const dir = join(allowed, `caps-${id}`);
      mkdirSync(dir);
      const cli_args = [`--dir=${dir}::/d`];
      const before = rssKb(procs[id]!.proc.pid);
      for (const [op, answer] of [
        ["truncate", "truncate: File too large\n"],
        ["allocate", "allocate: File too large\n"],
        ["pwrite", "pwrite: File too large\n"],
      ]) {
        const t = await sandbox(id, [op!, `/d/${op}`], { cli_args });
        expect(t).toMatchObject({ state: 3, results: answer });
        expect(statSync(join(dir, op!)).size).toBe(0);
      }
      // Writes until refused: the file stops below the bound, on disk too.
      const fill = await sandbox(id, ["fill", "/d/fill", "1000"], { cli_args });
      expect(fill.results).toMatch(/^fill: No space left on device after 1[45] MiB\n$/);
      expect(statSync(join(dir, "fill")).size).toBeLessThanOrEqual(DISK_MB << 20);
      const after = rssKb(procs[id]!.proc.pid);
      console.log(`${id}: proplet RSS ${before >> 10} -> ${after >> 10} MiB across the four attacks`);
      expect(after - before).toBeLessThan(200 << 10);
      expect(await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3], proplet_id: id })).toMatchObject({
        state: 3,
        results: id === "sb-host" ? "5\n" : "5",
      });
    }
  }, 60_000);

  test("a component's in-memory files have the same bounds", async () => {
    const dir = join(allowed, "caps-component");
    mkdirSync(dir);
    const cli_args = [`--dir=${dir}::/d`];
    for (const [op, answer] of [
      ["truncate", "truncate: File too large\n"],
      ["pwrite", "pwrite: File too large\n"],
    ]) {
      const t = await runTask(
        s.url,
        {
          name: "sandbox",
          file: b64("sandbox.component"),
          inputs: [op!, `/d/${op}`],
          cli_args,
          proplet_id: "sb-threads",
        },
        20_000,
      );
      expect(t).toMatchObject({ state: 3, results: answer });
    }
    const fill = await runTask(
      s.url,
      {
        name: "sandbox",
        file: b64("sandbox.component"),
        inputs: ["fill", "/d/f", "1000"],
        cli_args,
        proplet_id: "sb-threads",
      },
      30_000,
    );
    expect(fill.results).toMatch(/^fill: No space left on device after 1[45] MiB\n$/);
    expect(statSync(join(dir, "f")).size).toBeLessThanOrEqual(DISK_MB << 20);
  }, 60_000);

  test("a hard link in a preopen to a file outside is refused: not read, not written", async () => {
    const dir = join(allowed, "hardlink");
    mkdirSync(dir);
    const secret = join(outside, "linked-secret.txt");
    writeFileSync(secret, "linked secret\n");
    linkSync(secret, join(dir, "inside.txt"));
    for (const id of ["sb-threads", "sb-host"]) {
      const t = await sandbox(id, ["write", "/d/inside.txt", "overwritten\n"], { cli_args: [`--dir=${dir}::/d`] });
      expect(t.state).toBe(4);
      expect(t.error).toContain("inside.txt has 2 hard links");
      expect(JSON.stringify(t)).not.toContain("linked secret");
      expect(readFileSync(secret, "utf8")).toBe("linked secret\n");
    }
  });

  test("a preopen named through a symlink is its real directory, and one leading out is refused", async () => {
    const real = join(allowed, "real-root");
    mkdirSync(real);
    writeFileSync(join(real, "in.txt"), "real\n");
    symlinkSync(real, join(allowed, "alias-root"));
    symlinkSync(outside, join(allowed, "escape-root"));
    writeFileSync(join(outside, "escape.txt"), "outside\n");
    for (const id of ["sb-threads", "sb-host"]) {
      const viaAlias = await sandbox(id, ["cat", "/d/in.txt"], {
        cli_args: [`--dir=${join(allowed, "alias-root")}::/d`],
      });
      expect(viaAlias).toMatchObject({ state: 3, results: "real\n" });
      const out = await sandbox(id, ["cat", "/d/escape.txt"], {
        cli_args: [`--dir=${join(allowed, "escape-root")}::/d`],
      });
      expect(out.state).toBe(4);
      expect(out.error).toContain("is not under PROPLET_DIRS");
      expect(JSON.stringify(out)).not.toContain("outside\n");
    }
  });

  test("a FIFO in a preopen is not opened: the run does not hang", async () => {
    const dir = join(allowed, "fifo");
    mkdirSync(dir);
    expect(Bun.spawnSync(["mkfifo", join(dir, "pipe")]).exitCode).toBe(0);
    writeFileSync(join(dir, "in.txt"), "beside a pipe\n");
    for (const id of ["sb-threads", "sb-host"]) {
      const t = await sandbox(id, ["cat", "/d/in.txt"], { cli_args: [`--dir=${dir}::/d`] });
      expect(t).toMatchObject({ state: 3, results: "beside a pipe\n" });
      expect((await sandbox(id, ["cat", "/d/pipe"], { cli_args: [`--dir=${dir}::/d`] })).results).toBe(
        "cat: No such file or directory\n",
      );
    }
  });

  test("a preopen or a directory in it swapped for a symlink while the task runs: nothing is written outside", async () => {
    for (const id of ["sb-threads", "sb-host"]) {
      for (const which of ["root", "sub"]) {
        const dir = join(allowed, `swap-${which}-${id}`);
        mkdirSync(join(dir, "sub"), { recursive: true });
        const target = tempDir("propeller-sb-target-");
        const guestPath = which === "root" ? "/d/out.txt" : "/d/sub/out.txt";
        const c = await startRunning(
          s.url,
          {
            name: "sandbox",
            file: b64("sandbox"),
            inputs: ["writewait", guestPath, "3000"],
            cli_args: [`--dir=${dir}::/d`],
            proplet_id: id,
          },
          "the writer to run",
        );
        // The guest says it wrote (so its tree was loaded), then waits before its exit writes back.
        await until(
          "the guest to write",
          async () => JSON.stringify((await http(`${s.url}/tasks/${c.body.id}/logs`)).body).includes("written"),
          15_000,
          50,
        );
        const swapped = which === "root" ? dir : join(dir, "sub");
        renameSync(swapped, `${swapped}.away`);
        symlinkSync(target, swapped);
        const t = await untilEnded(s.url, c.body.id, "the writer to end", 20_000);
        expect(t.results).toContain("written\n");
        expect(readdirSync(target)).toEqual([]);
        if (which === "root") expect(t.error).toContain("symbolic link");
      }
    }
  }, 60_000);

  test("links a guest makes stay in its memory: the host gets plain files, never a link", async () => {
    const dir = join(allowed, "guest-links");
    mkdirSync(dir);
    writeFileSync(join(dir, "a.txt"), "a\n");
    const cli_args = [`--dir=${dir}::/d`];
    expect((await sandbox("sb-threads", ["link", "/d/a.txt", "/d/b.txt"], { cli_args })).results).toBe("link: ok\n");
    await sandbox("sb-threads", ["symlink", "/etc/passwd", "/d/c.txt"], { cli_args });
    await sandbox("sb-threads", ["rename", "/d/a.txt", "/d/../../a.txt"], { cli_args });
    expect(readdirSync(dir).sort()).toEqual(["a.txt", "b.txt"]);
    expect(statSync(join(dir, "b.txt")).nlink).toBe(1);
    expect(readFileSync(join(dir, "b.txt"), "utf8")).toBe("a\n");
  });
});

test("a file a guest links under many names is written back within the run's bound, not once per name", async () => {
  for (const [id, file] of [
    ["sb-threads", "sandbox"],
    ["sb-host", "sandbox"],
    ["sb-threads", "sandbox.component"],
  ] as const) {
    const dir = join(allowed, `many-links-${id}-${file}`);
    mkdirSync(dir);
    const cli_args = [`--dir=${dir}::/d`];
    const run = (inputs: string[]) =>
      runTask(s.url, { name: "sandbox", file: b64(file), inputs, cli_args, proplet_id: id }, 30_000);
    expect((await run(["fill", "/d/big", "10"])).results).toBe("fill: ok, 10 MiB\n");
    const t = await run(["links", "/d/big", "50"]); // 50 names: 500 MiB if each became a file
    expect(t.results).toBe("links: ok, 50\n");
    expect(t.state).toBe(4);
    expect(t.error).toContain("over the run's disk bound");
    const onDisk = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    expect(onDisk).toBeLessThanOrEqual((10 + 10 + DISK_MB) << 20); // loaded + rewritten + the bound
  }
}, 90_000);
