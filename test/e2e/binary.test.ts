import { beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  b64,
  FIXTURES,
  http,
  propletEnv,
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
import { inOrder, walkQuickStart } from "../readme.ts";

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

  test("the README's quick start runs as written with the binary", async () => {
    const s = await startServe({ cmd: [bin], cwd: dir });
    try {
      const r = walkQuickStart(bin, { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
      expect(r.promised.length).toBeGreaterThanOrEqual(3);
      expect({ out: r.stdout, ok: inOrder(r.stdout, r.promised) }).toEqual({ out: r.stdout, ok: true });
    } finally {
      await s.kill("SIGKILL");
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

describe("SIGTERM to the compiled proplet", () => {
  /** Live processes of process group `pgid`. */
  const group = (pgid: number) =>
    readdirSync("/proc").filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return /^\d+$/.test(d) && Number(f[2]) === pgid && f[0] !== "Z";
      } catch {
        return false;
      }
    });

  test("ends it and its host-runtime child running a task: nothing of its group is left", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const env = {
      ...process.env,
      PROPLET_RUNTIME: "host",
      PROPLET_DATA_DIR: tempDir("propeller-proplet-"),
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
      ...(await propletEnv(s.url, "bin-term")),
    };
    const p = Bun.spawn([bin, "proplet"], { cwd: dir, env, detached: true, stdout: "ignore", stderr: "ignore" });
    try {
      await untilAlive(s.url, "bin-term", 20_000);
      await startRunning(s.url, { name: "spin", file: b64("spin"), proplet_id: "bin-term" }, "spin running");
      await until("the host runtime's child", () => group(p.pid).length >= 2);
      p.kill("SIGTERM");
      await until("the proplet's group to end", () => group(p.pid).length === 0, 15_000);
    } finally {
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {}
      await s.kill("SIGKILL");
    }
  }, 60_000);
});

describe("install as a system service", () => {
  test("install --root writes the binary, data dir, config and a unit that systemd-analyze verifies; uninstall keeps data", () => {
    // A root that does not exist yet (an image being built) is made.
    const root = join(tempDir("propeller-root-"), "image");
    const dry = Bun.spawnSync([bin, "install", "--root", root, "--dry-run"]);
    expect(dry.stdout.toString()).toContain(`would create ${root} (--root)`);
    expect(dry.stdout.toString()).toContain(`would write ${join(root, "etc/systemd/system/propeller.service")}`);
    expect(existsSync(root)).toBe(false);
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

  test("install leaves standard parents 0755 and existing dirs alone, writes config 0600; purge is symmetric per unit", () => {
    const root = tempDir("propeller-root-");
    // An existing etc/ with its own mode: install must not change it.
    mkdirSync(join(root, "etc"), { mode: 0o750 });
    chmodSync(join(root, "etc"), 0o750);
    for (const extra of [[], ["--proplet"]])
      expect(Bun.spawnSync([bin, "install", "--root", root, ...extra]).exitCode).toBe(0);
    const mode = (p: string) => statSync(join(root, p)).mode & 0o777;
    expect({
      etc: mode("etc"),
      var: mode("var"),
      varLib: mode("var/lib"),
      usrLocalBin: mode("usr/local/bin"),
      etcPropeller: mode("etc/propeller"),
      data: mode("var/lib/propeller"),
      config: mode("etc/propeller/config.toml"),
    }).toEqual({
      etc: 0o750,
      var: 0o755,
      varLib: 0o755,
      usrLocalBin: 0o755,
      etcPropeller: 0o755,
      data: 0o700,
      config: 0o600,
    });
    // State of both units, and a file the operator put in /etc/propeller.
    writeFileSync(join(root, "var/lib/propeller/propeller.db"), "serve's");
    mkdirSync(join(root, "var/lib/propeller/proplet"));
    writeFileSync(join(root, "var/lib/propeller/proplet/identity"), "the proplet's");
    mkdirSync(join(root, "etc/propeller/certs"));
    writeFileSync(join(root, "etc/propeller/certs/ca.pem"), "operator's");
    // serve's purge: its own state and unit go; the proplet unit's state, the binary and settings stay.
    const serve = Bun.spawnSync([bin, "uninstall", "--root", root, "--purge"]);
    expect(serve.exitCode).toBe(0);
    expect(existsSync(join(root, "var/lib/propeller/propeller.db"))).toBe(false);
    expect(readFileSync(join(root, "var/lib/propeller/proplet/identity"), "utf8")).toBe("the proplet's");
    expect(existsSync(join(root, "etc/systemd/system/propeller.service"))).toBe(false);
    expect(existsSync(join(root, "etc/systemd/system/propeller-proplet.service"))).toBe(true);
    expect(existsSync(join(root, "usr/local/bin/propeller"))).toBe(true);
    expect(existsSync(join(root, "etc/propeller/config.toml"))).toBe(true);
    // The last unit's purge: everything install created goes, binary and var/ included; what it did not stays.
    const proplet = Bun.spawnSync([bin, "uninstall", "--root", root, "--proplet", "--purge"]);
    expect(proplet.exitCode).toBe(0);
    for (const gone of ["usr", "var", "etc/systemd", "etc/propeller/config.toml", "etc/propeller/install.json"]) {
      expect({ gone, exists: existsSync(join(root, gone)) }).toEqual({ gone, exists: false });
    }
    expect(readFileSync(join(root, "etc/propeller/certs/ca.pem"), "utf8")).toBe("operator's");
    expect(mode("etc")).toBe(0o750);
    expect(proplet.stdout.toString()).toContain(`keep ${join(root, "etc/propeller")} (holds certs)`);
  });
});
