// Footprint of the compiled binary: its size, exec → healthy /health (median of 10 cold starts, each on a new
// data dir), and resident memory after 30 s idle for `serve` (with its local proplet) and for a standalone
// `proplet`. With --arm64 (and qemu-user-static installed) the same for the arm64 binary under emulation, reported
// with no goal. Builds the binaries first unless --no-build. The same-run reference is an empty file compiled by the
// same Bun (`empty_bun`: exec → exit, and the RSS of a compiled program that only stays alive), with serve's figures
// over it (`cold_start_over_empty`, `serve_rss_over_empty`, `proplet_rss_over_empty`). The last stdout line is one
// JSON object.
//
//   bun scripts/bench/footprint.ts [--idle 30] [--starts 10] [--arm64] [--no-build]
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { scriptArgs } from "../args.ts";
import { adminToken, freePort, median, mqttLogin, rssMib, serveArgs } from "./lib.ts";

const { values: opt } = scriptArgs(
  import.meta.path,
  {
    options: {
      idle: { type: "string", default: "30" },
      starts: { type: "string", default: "10" },
      arm64: { type: "boolean", default: false },
      "no-build": { type: "boolean", default: false },
    },
  },
  { idle: { above: 0 }, starts: { min: 1 } },
);
const root = join(import.meta.dir, "..", "..");
const say = (s: string) => process.stderr.write(`${s}\n`);
const IDLE = Number(opt.idle);

if (!opt["no-build"]) {
  const targets = opt.arm64 ? ["--target", "linux-x64,linux-arm64"] : [];
  const b = Bun.spawnSync([process.execPath, join(root, "scripts/build.ts"), ...targets], { stderr: "inherit" });
  if (b.exitCode !== 0) throw new Error("build failed");
}

const rssMibRounded = (pid: number) => +rssMib(pid).toFixed(1);

async function startServe(cmd: string[], dataDir: string, timeoutMs: number) {
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const t0 = performance.now();
  const proc = Bun.spawn([...cmd, ...serveArgs(httpPort, mqttPort, dataDir)], { stdout: "ignore", stderr: "inherit" });
  const url = `http://127.0.0.1:${httpPort}`;
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {}
    if (performance.now() - t0 > timeoutMs) throw new Error(`serve did not answer in ${timeoutMs} ms`);
    await Bun.sleep(2);
  }
  return { proc, url, mqttPort, ms: performance.now() - t0 };
}

async function measure(label: string, cmd: string[], starts: number, timeoutMs: number) {
  say(`${label}: ${starts} cold starts…`);
  const times: number[] = [];
  for (let i = 0; i < starts; i++) {
    const dir = mkdtempSync(join(tmpdir(), "propeller-footprint-"));
    const s = await startServe(cmd, dir, timeoutMs);
    times.push(s.ms);
    s.proc.kill("SIGKILL");
    await s.proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
  say(`${label}: serve and a standalone proplet idle for ${IDLE} s…`);
  const dir = mkdtempSync(join(tmpdir(), "propeller-footprint-"));
  const s = await startServe(cmd, dir, timeoutMs);
  const login = await mqttLogin(s.url, adminToken(dir), "proplet", "footprint-proplet");
  const proplet = Bun.spawn([...cmd, "proplet", "--log-level", "warn"], {
    env: {
      ...process.env,
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
      PROPLET_ENTITY_ID: "footprint-proplet",
      PROPLET_API_KEY: login.password ?? "",
    },
    stdout: "ignore",
    stderr: "inherit",
  });
  await Bun.sleep(IDLE * 1000);
  const out = {
    cold_start_ms: +median(times).toFixed(1),
    serve_rss_mib: rssMibRounded(s.proc.pid),
    proplet_rss_mib: rssMibRounded(proplet.pid),
  };
  for (const p of [proplet, s.proc]) {
    p.kill("SIGKILL");
    await p.exited;
  }
  rmSync(dir, { recursive: true, force: true });
  return out;
}

/**
 * The same-run reference: an empty file compiled by the same Bun (`bun build --compile`), its exec → exit time
 * (median of as many starts), and the resident memory of a compiled program that only stays alive, after as long
 * an idle. What Bun itself costs on this machine; serve's figures are reported over these.
 */
async function emptyBun(starts: number) {
  const dir = mkdtempSync(join(tmpdir(), "propeller-empty-"));
  try {
    writeFileSync(join(dir, "empty.ts"), "");
    writeFileSync(join(dir, "idle.ts"), "setInterval(() => {}, 1 << 30);\n");
    for (const name of ["empty", "idle"]) {
      const b = Bun.spawnSync(
        [process.execPath, "build", "--compile", join(dir, `${name}.ts`), "--outfile", join(dir, name)],
        { stdout: "ignore", stderr: "inherit" },
      );
      if (b.exitCode !== 0) throw new Error(`bun build --compile ${name}.ts failed`);
    }
    const times: number[] = [];
    for (let i = 0; i < starts; i++) {
      const t0 = performance.now();
      const p = Bun.spawn([join(dir, "empty")], { stdout: "ignore", stderr: "inherit" });
      await p.exited;
      times.push(performance.now() - t0);
    }
    const idle = Bun.spawn([join(dir, "idle")], { stdout: "ignore", stderr: "inherit" });
    await Bun.sleep(IDLE * 1000);
    const rss = rssMibRounded(idle.pid);
    idle.kill("SIGKILL");
    await idle.exited;
    return {
      start_ms: +median(times).toFixed(1),
      rss_mib: rss,
      binary_mib: +(statSync(join(dir, "empty")).size / 1048576).toFixed(1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bin = join(root, "dist", "propeller");
const x64 = await measure("x64", [bin], Number(opt.starts), 15_000);
say(`an empty compiled Bun program: ${opt.starts} starts, idle ${IDLE} s…`);
const empty = await emptyBun(Number(opt.starts));
const result: Record<string, unknown> = {
  binary_mib: +(statSync(bin).size / 1048576).toFixed(1),
  ...x64,
  empty_bun: empty,
  cold_start_over_empty: +(x64.cold_start_ms / empty.start_ms).toFixed(1),
  serve_rss_over_empty: +(x64.serve_rss_mib / empty.rss_mib).toFixed(1),
  proplet_rss_over_empty: +(x64.proplet_rss_mib / empty.rss_mib).toFixed(1),
};
if (opt.arm64) {
  const qemu = Bun.which("qemu-aarch64-static") ?? "/usr/bin/qemu-aarch64-static";
  const arm = join(root, "dist", "propeller-linux-arm64");
  result.arm64 = {
    binary_mib: +(statSync(arm).size / 1048576).toFixed(1),
    ...(await measure("arm64 (qemu)", [qemu, arm], 3, 60_000)),
  };
}
console.log(JSON.stringify(result));
