// The first task after a quiet spell: a real `propeller serve` (authentication on, SQLite, local proplet) takes a
// short burst (so every warm Wasm worker has run something), then idles --idle-s seconds (longer than the pool's
// RETIRE_IDLE_MS, so workers that retire have retired) --rounds times; after each idle one task is started and
// the time from its start request to its result on MQTT is taken (`first_after_idle_ms`), then --warm tasks at
// once after it (`warm_p50_ms`, the same-run reference). Also the Wasm worker threads alive in serve after each
// idle (`workers_after_idle`, from /proc) and serve's RSS then. JSON on the last stdout line.
//
//   bun scripts/bench/idle-first.ts [--idle-s 15] [--rounds 5] [--warm 50] [--bin dist/propeller]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MODULES } from "../../src/examples/modules.ts";
import { scriptArgs } from "../args.ts";
import { adminToken, freePort, median, mqttLogin, rssMib, serveArgs, waitForHealth } from "./lib.ts";
import { loadClient } from "./load.ts";

const { values: opt } = scriptArgs(
  import.meta.path,
  {
    options: {
      "idle-s": { type: "string", default: "15" },
      rounds: { type: "string", default: "5" },
      warm: { type: "string", default: "50" },
      bin: { type: "string" },
    },
  },
  { "idle-s": { min: 0 }, rounds: { min: 1 }, warm: { min: 0 } },
);
const root = join(import.meta.dir, "..", "..");
const say = (s: string) => process.stderr.write(`${s}\n`);
const dataDir = mkdtempSync(join(tmpdir(), "propeller-idle-"));
const httpPort = await freePort();
const mqttPort = await freePort();
const cmd = opt.bin ? [opt.bin] : [process.execPath, join(root, "src/main.ts")];
const serve = Bun.spawn([...cmd, ...serveArgs(httpPort, mqttPort, dataDir)], { stdout: "inherit", stderr: "inherit" });
process.once("exit", () => serve.kill("SIGKILL"));
const url = `http://127.0.0.1:${httpPort}`;
await waitForHealth(url);
const token = adminToken(dataDir);
const client = await loadClient(url, mqttPort, token, await mqttLogin(url, token, "manager", "bench-observer"));
const task = (i: number) => ({ name: "add", file: MODULES.add.wasm, inputs: [i, 1] });

/** Threads of serve named as Bun names a Worker's thread. */
const workerThreads = () =>
  readdirSync(`/proc/${serve.pid}/task`).filter((t) => {
    try {
      return readFileSync(`/proc/${serve.pid}/task/${t}/comm`, "utf8").trim() === "Worker";
    } catch {
      return false;
    }
  }).length;

async function one(i: number): Promise<number> {
  const { id } = await client.post("/tasks", task(i));
  const t0 = performance.now();
  await client.startAndSeen(id);
  return performance.now() - t0;
}

say("warm-up burst…");
await client.burst(500, 16, task);
const first: number[] = [];
const warm: number[] = [];
const workers: number[] = [];
const rss: number[] = [];
for (let r = 0; r < Number(opt.rounds); r++) {
  say(`round ${r + 1}: idling ${opt["idle-s"]} s…`);
  await Bun.sleep(Number(opt["idle-s"]) * 1000);
  workers.push(workerThreads());
  rss.push(+rssMib(serve.pid).toFixed(1));
  first.push(await one(r));
  for (let i = 0; i < Number(opt.warm); i++) warm.push(await one(i));
}
await client.close();
serve.kill("SIGTERM");
await serve.exited;
rmSync(dataDir, { recursive: true, force: true });
const ms = (x: number) => +x.toFixed(2);
console.log(
  JSON.stringify({
    idle_s: Number(opt["idle-s"]),
    first_after_idle_ms: first.map(ms),
    first_after_idle_p50_ms: ms(median(first)),
    warm_p50_ms: ms(median(warm)),
    first_over_warm: +(median(first) / median(warm)).toFixed(2),
    workers_after_idle: workers,
    rss_after_idle_mib: rss,
    runtime: opt.bin ? "compiled" : "bun",
  }),
);
