import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  existsSync,
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
import {
  b64,
  http,
  type Proc,
  propletEnv,
  runTask,
  type Serve,
  spawnPropeller,
  startRunning,
  startServe,
  tempDir,
  until,
  untilAlive,
  untilEnded,
} from "../helpers.ts";

// Task sandbox attacks (issue 25, items 1, 6 and 7's FL key), against a real serve and real proplets: one runs
// each task as a child process (PROPLET_RUNTIME=host), one in worker threads. A task is written by whoever may
// call the manager; nothing in it may reach the proplet's user, its key, or its disk beyond what it was given.

const KEY_MARKER = "PROPLET_API_KEY";
let s: Serve;
const procs: Record<string, Proc> = {};
const keys: Record<string, string> = {};
let allowed: string; // PROPLET_DIRS of both proplets
let outside: string; // a directory no task may touch
const DISK_MB = 16;

beforeAll(async () => {
  allowed = tempDir("propeller-sb-allowed-");
  outside = tempDir("propeller-sb-outside-");
  s = await startServe({ extra: ["--no-local-proplet"] });
  for (const [id, runtime] of [
    ["sb-host", "host"],
    ["sb-threads", "inprocess"],
  ] as const) {
    const creds = await propletEnv(s.url, id);
    keys[id] = creds.PROPLET_API_KEY!;
    procs[id] = spawnPropeller(["proplet"], {
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
      ...creds,
      PROPLET_RUNTIME: runtime,
      PROPLET_DIRS: allowed,
      PROPLET_MAX_TASK_DISK_MB: String(DISK_MB),
    });
  }
  for (const id of Object.keys(procs)) await untilAlive(s.url, id, 20_000);
});
afterAll(async () => {
  for (const p of Object.values(procs)) await p.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

const sandbox = (proplet: string, inputs: string[], extra: Record<string, unknown> = {}) =>
  runTask(s.url, { name: "sandbox", file: b64("sandbox"), inputs, proplet_id: proplet, ...extra }, 20_000);

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

describe("the host runtime's child process", () => {
  let evil: string;
  let marker: string;
  beforeAll(() => {
    // A shared object that, loaded into any process, writes a marker with that process's PROPLET_API_KEY.
    evil = tempDir("propeller-sb-evil-");
    marker = join(evil, "pwned");
    const src = join(evil, "evil.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void pwn(void) {
  FILE *f = fopen(${JSON.stringify(marker)}, "a");
  if (f) { const char *k = getenv("${KEY_MARKER}"); fprintf(f, "so key=%s\\n", k ? k : ""); fclose(f); }
}
`,
    );
    const cc = Bun.spawnSync(["clang", "-shared", "-fPIC", "-o", join(evil, "evil.so"), src]);
    if (cc.exitCode !== 0) throw new Error(`clang: ${cc.stderr}`);
    writeFileSync(
      join(evil, "evil.js"),
      `require("fs").appendFileSync(${JSON.stringify(marker)}, "js key=" + process.env.${KEY_MARKER} + "\\n");`,
    );
    writeFileSync(join(evil, "bunfig.toml"), `preload = [${JSON.stringify(join(evil, "evil.js"))}]\n`);
  });

  test("a task's LD_PRELOAD, BUN_OPTIONS, NODE_OPTIONS, BUN_CONFIG_* run nothing; the guest still sees them", async () => {
    const env = {
      LD_PRELOAD: join(evil, "evil.so"),
      BUN_OPTIONS: `--preload ${join(evil, "evil.js")}`,
      NODE_OPTIONS: `--require ${join(evil, "evil.js")}`,
      BUN_CONFIG_FILE: join(evil, "bunfig.toml"),
      BUN_INSTALL: evil,
      PATH: evil,
      MULTI: "line one\nline two",
    };
    const t = await sandbox("sb-host", ["env"], { env });
    expect(t.state).toBe(3);
    expect(existsSync(marker)).toBe(false);
    // The guest's environ holds every value as given, through `--env`, and nothing of the proplet's.
    for (const [k, v] of Object.entries(env)) expect(t.results).toContain(`${k}=${v}\n`);
    expect(t.results).not.toContain(KEY_MARKER);
    expect(t.results).not.toContain(keys["sb-host"]!);
    // Of the proplet's variables only PROPLET_ID, which the proplet gives every task.
    expect(t.results.match(/^PROPLET_\w*/gm)).toEqual(["PROPLET_ID"]);
    // Of Propeller's own only the task's and run's ids and the attempt, which every guest is given (see README).
    expect(t.results.match(/^PROPELLER_\w*/gm)).toEqual(["PROPELLER_TASK_ID", "PROPELLER_RUN_ID", "PROPELLER_ATTEMPT"]);
    expect(t.results).not.toMatch(/^(HOME|USER|BUN_INSPECT\w*)=/m);
  });

  test("a guest never sees the proplet's key in its environ, in either runtime", async () => {
    for (const id of ["sb-host", "sb-threads"]) {
      const t = await sandbox(id, ["env"]);
      expect(t.state).toBe(3);
      expect(t.results).not.toContain(keys[id]!);
      expect(t.results).not.toContain(KEY_MARKER);
    }
  });

  test("no task field becomes an option of the child: a name or an input that reads as --dir is the guest's", async () => {
    writeFileSync(join(outside, "secret.txt"), "outside secret\n");
    const name = `--dir=${outside}::/x`;
    // The name is argv[0] of the command (no export by that name): it must not preopen `outside`.
    const t = await runTask(
      s.url,
      { name, file: b64("sandbox"), inputs: ["cat", "/x/secret.txt"], proplet_id: "sb-host" },
      20_000,
    );
    expect(JSON.stringify(t)).not.toContain("outside secret");
    expect(t.results).toBe("cat: Capabilities insufficient\n"); // no /x: nothing was preopened
    // An input that reads as an option is the guest's argument.
    const input = await sandbox("sb-host", ["cat", `--dir=${outside}::/x`]);
    expect(input.results).toBe("cat: Capabilities insufficient\n");
  });

  test("env names that are not names, and unknown cli_args, fail the task saying why", async () => {
    const bad = await sandbox("sb-host", ["env"], { env: { "A=B": "x" } });
    expect(bad.state).toBe(4);
    expect(bad.error).toContain('env name "A=B" is not allowed');
    const dash = await sandbox("sb-host", ["env"], { env: { "--dir": `${outside}::/x` } });
    expect(dash.state).toBe(4);
    expect(dash.error).toContain('env name "--dir" is not allowed');
    const opt = await sandbox("sb-host", ["env"], { cli_args: ["-W", "unknown"] });
    expect(opt.state).toBe(4);
    expect(opt.error).toContain("unsupported runtime option");
    const envFlag = await sandbox("sb-host", ["env"], { cli_args: [`--env=LD_PRELOAD=${join(evil, "evil.so")}`] });
    expect(envFlag.state).toBe(3);
    expect(envFlag.results).toContain(`LD_PRELOAD=${join(evil, "evil.so")}`);
    expect(existsSync(marker)).toBe(false);
  });
});

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

describe("the FL key", () => {
  test("a task whose env names another port of the gateway's host does not get the proplet's key", async () => {
    const seen: string[] = [];
    const hostile = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const u = new URL(req.url);
        seen.push(`${req.method} ${u.pathname} ${req.headers.get("authorization")}`);
        if (u.pathname.startsWith("/fl/models/")) return Response.json({ w: [0], b: 0 });
        if (u.pathname === "/fl/update") return Response.json({ ok: true });
        return Response.json({ error: "no" }, { status: 404 });
      },
    });
    try {
      const fl = `http://127.0.0.1:${hostile.port}/fl`;
      for (const id of ["sb-threads", "sb-host"]) {
        seen.length = 0;
        const t = await sandbox(id, ["env"], {
          env: {
            ROUND_ID: "r1",
            MODEL_URI: "fl/models/global_model_v1",
            PROPELLER_FL_URL: fl,
            MODEL_REGISTRY_URL: fl,
            MANAGER_COORDINATOR_URL: fl,
            DATA_STORE_URL: fl,
          },
        });
        await until("the hostile listener to be asked", () => seen.length >= 2);
        expect(seen.some((l) => l.startsWith("GET /fl/models/1"))).toBe(true);
        expect(seen.every((l) => l.endsWith(" null"))).toBe(true);
        expect(JSON.stringify(t)).not.toContain(keys[id]!);
      }
    } finally {
      hostile.stop(true);
    }
  });
});

test("the proplets and serve are still healthy", async () => {
  expect((await fetch(`${s.url}/health`)).ok).toBe(true);
  for (const id of Object.keys(procs)) expect((await http(`${s.url}/proplets/${id}`)).body.alive).toBe(true);
});
