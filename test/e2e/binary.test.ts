import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  FIXTURES,
  http,
  ROOT,
  runTask,
  spawnProplet,
  startRunning,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// `npm run build` gives one executable that runs every subcommand with no node_modules beside it.
let bin: string;
let dir: string;

beforeAll(async () => {
  const build = Bun.spawnSync([process.execPath, join(ROOT, "scripts", "build.ts")], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  dir = tempDir("propeller-bin-");
  bin = join(dir, "propeller");
  copyFileSync(join(ROOT, "dist", "propeller"), bin);
  expect(existsSync(join(dir, "node_modules"))).toBe(false);
}, 120_000);

describe("the compiled executable", () => {
  test("--help lists the subcommands", () => {
    const r = Bun.spawnSync([bin, "--help"], { cwd: dir });
    const out = r.stdout.toString() + r.stderr.toString();
    for (const c of ["serve", "proplet", "tasks", "proplets", "health", "wasm"]) expect(out).toContain(c);
  });

  test("wasm run: a core export and a WASI command", () => {
    const add = Bun.spawnSync([bin, "wasm", "run", join(FIXTURES, "add.wasm"), "--invoke", "add", "10", "20"], {
      cwd: dir,
    });
    expect(add.stdout.toString()).toBe("30\n");
    const hello = Bun.spawnSync([bin, "wasm", "run", join(FIXTURES, "hello.wasm"), "World"], { cwd: dir });
    expect(hello.stdout.toString()).toBe("Hello World from hello\n");
    const fail = Bun.spawnSync([bin, "wasm", "run", join(FIXTURES, "fail.wasm")], { cwd: dir });
    expect(fail.exitCode).toBe(3);
    expect(fail.stderr.toString()).toContain("something went wrong");
  });

  test("wasm run: components, with jco and its core modules inside the binary", () => {
    const calc = join(FIXTURES, "calc.component.wasm");
    const add = Bun.spawnSync([bin, "wasm", "run", calc, "--invoke", "add", "10", "20"], { cwd: dir });
    expect({ out: add.stdout.toString(), err: add.stderr.toString() }).toEqual({ out: "30\n", err: "" });
    const args = Bun.spawnSync([bin, "wasm", "run", join(FIXTURES, "args.component.wasm"), "x"], { cwd: dir });
    expect(args.stdout.toString()).toBe("args.component x\n");
  });

  test("--storage kv: LMDB's native addon is inside the binary; tasks survive kill -9", async () => {
    const dataDir = tempDir();
    const extra = ["--storage", "kv"];
    const s = await startServe({ cmd: [bin], cwd: dir, dataDir, extra });
    const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3] });
    expect(t.results).toBe("5");
    expect((await http(`${s.url}/health`)).body.storage).toBe("kv");
    await s.kill("SIGKILL");
    const again = await startServe({ cmd: [bin], cwd: dir, dataDir, extra });
    try {
      expect((await http(`${again.url}/tasks/${t.id}`)).body).toMatchObject({ state: 3, results: "5" });
    } finally {
      await again.kill("SIGKILL");
    }
  });

  test("serve, a separate proplet and the CLI, all from the one binary", async () => {
    const s = await startServe({ cmd: [bin], cwd: dir });
    const p = await spawnProplet(s, "bin-proplet", {}, [bin], dir);
    try {
      await untilAlive(s.url, "bin-proplet");
      const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [1, 2], proplet_id: "bin-proplet" });
      expect(t.results).toBe("3");
      // The console is inside the binary: its page and the script and style it names, with nothing beside it.
      const html = await (await fetch(`${s.url}/`)).text();
      const assets = [...html.matchAll(/(?:src|href)="(\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
      expect(assets.length).toBe(2);
      for (const a of assets) {
        const res = await fetch(`${s.url}${a}`);
        expect(`${a} ${res.status}`).toBe(`${a} 200`);
        expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(1000);
      }
      const cli = Bun.spawnSync(
        [
          bin,
          "tasks",
          "create",
          "hello",
          "--file",
          join(FIXTURES, "hello.wasm"),
          "--inputs",
          "Bin",
          "--start",
          "--wait",
        ],
        {
          cwd: dir,
          env: { ...process.env, PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) },
        },
      );
      expect(cli.stdout.toString()).toBe("Hello Bin from hello\n");
      // Stop works in the binary's workers too.
      const c = await startRunning(s.url, { name: "spin", file: b64("spin") }, "spin running");
      await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
      await until("spin stopped", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 6, 2000);
      // The host runtime re-runs the binary itself as `propeller wasm run`.
      const h = await spawnProplet(s, "bin-host", { PROPLET_RUNTIME: "host" }, [bin], dir);
      try {
        await untilAlive(s.url, "bin-host");
        const ht = await runTask(s.url, {
          name: "hello",
          file: b64("hello"),
          inputs: ["Host"],
          proplet_id: "bin-host",
        });
        expect(ht.results).toBe("Hello Host from hello\n");
      } finally {
        await h.kill("SIGKILL");
      }
    } finally {
      await p.kill("SIGKILL");
      await s.kill("SIGKILL");
    }
  });
});

describe("install as a system service", () => {
  test("install --root writes the binary, data dir, config and a unit that systemd-analyze verifies; uninstall keeps data", () => {
    const root = tempDir("propeller-root-");
    const dry = Bun.spawnSync([bin, "install", "--root", root, "--dry-run"]);
    expect(dry.stdout.toString()).toContain(`would write ${join(root, "etc/systemd/system/propeller.service")}`);
    expect(existsSync(join(root, "etc"))).toBe(false);
    for (const extra of [[], ["--proplet"]]) {
      const r = Bun.spawnSync([bin, "install", "--root", root, ...extra]);
      expect(r.exitCode).toBe(0);
    }
    expect(statSync(join(root, "usr/local/bin/propeller")).mode & 0o777).toBe(0o755);
    expect(statSync(join(root, "var/lib/propeller")).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(root, "etc/propeller/config.toml"), "utf8")).toContain('data_dir = "/var/lib/propeller"');
    const unit = readFileSync(join(root, "etc/systemd/system/propeller.service"), "utf8");
    for (const line of ["Restart=on-failure", "NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true"]) {
      expect(unit).toContain(line);
    }
    expect(unit).toContain("ExecStart=/usr/local/bin/propeller serve --config /etc/propeller/config.toml");
    // systemd-analyze needs the system's own units (sysinit.target…) in the root it checks.
    const analyze = Bun.which("systemd-analyze");
    if (!analyze) throw new Error("systemd-analyze is missing: apt-get install systemd (.ci/run does)");
    cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    // ExecReload= runs /bin/kill, which every system has and this root needs for the check.
    mkdirSync(join(root, "bin"), { recursive: true });
    copyFileSync("/bin/kill", join(root, "bin/kill"));
    for (const u of ["propeller.service", "propeller-proplet.service"]) {
      const v = Bun.spawnSync([analyze, "verify", `--root=${root}`, join(root, "etc/systemd/system", u)]);
      const complaints = v.stderr
        .toString()
        .split("\n")
        .filter((l) => l.includes("propeller"));
      expect({ unit: u, exit: v.exitCode, complaints }).toEqual({ unit: u, exit: 0, complaints: [] });
    }
    expect(Bun.spawnSync([bin, "uninstall", "--root", root]).exitCode).toBe(0);
    expect(existsSync(join(root, "etc/systemd/system/propeller.service"))).toBe(false);
    expect(existsSync(join(root, "var/lib/propeller"))).toBe(true);
    expect(Bun.spawnSync([bin, "uninstall", "--root", root, "--proplet", "--purge"]).exitCode).toBe(0);
    expect(existsSync(join(root, "var/lib/propeller"))).toBe(false);
  });
});
