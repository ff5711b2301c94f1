// Latent-task invocation latency: serve (authentication on) with its local proplet, an `add` task deployed once
// (`latent: true`), then N invocations one after another through REST (client-observed: HTTP, manager, MQTT in
// memory, a pool worker, and back), and M more 50 at a time for throughput. One JSON line:
// {invoke_p50_ms, invoke_p99_ms, invokes_per_s}. Issue 15's goal: p50 ≤ 1 ms on the local proplet.
//   bun scripts/bench/invoke.ts [--calls 2000] [--concurrent-calls 5000]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { example } from "../../src/cli/examples.ts";
import { scriptArgs } from "../args.ts";
import { adminToken, authHeaders, freePort, serveArgs, waitForHealth } from "./lib.ts";

const { values } = scriptArgs(import.meta.path, {
  options: { calls: { type: "string", default: "2000" }, "concurrent-calls": { type: "string", default: "5000" } },
});
const dataDir = mkdtempSync(join(tmpdir(), "propeller-invoke-"));
const [httpPort, mqttPort] = [await freePort(), await freePort()];
const serve = Bun.spawn(
  [process.execPath, join(import.meta.dir, "..", "..", "src", "main.ts"), ...serveArgs(httpPort, mqttPort, dataDir)],
  { stdout: "inherit", stderr: "inherit" },
);
try {
  const url = `http://127.0.0.1:${httpPort}`;
  await waitForHealth(url);
  const headers = { ...authHeaders(adminToken(dataDir)), "content-type": "application/json" };
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${url}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  const task = await post("/tasks", {
    name: "add",
    file: Buffer.from(example("add")).toString("base64"),
    latent: true,
  });
  await post(`/tasks/${task.id}/start`, {});
  const invoke = (i: number) => post(`/tasks/${task.id}/invoke`, { inputs: [i, 1] });
  for (let tries = 0; ; tries++) {
    try {
      await invoke(0);
      break;
    } catch (e) {
      if (tries > 100) throw e;
      await Bun.sleep(50);
    }
  }
  for (let i = 0; i < 200; i++) await invoke(i); // warm-up: JIT, workers
  const samples: number[] = [];
  for (let i = 0; i < Number(values.calls); i++) {
    const t0 = performance.now();
    const r = await invoke(i);
    samples.push(performance.now() - t0);
    if (r.results !== String(i + 1)) throw new Error(`invocation ${i} answered ${r.results}`);
  }
  samples.sort((a, b) => a - b);
  const pct = (p: number) => +samples[Math.min(samples.length - 1, Math.floor(samples.length * p))]!.toFixed(3);
  const total = Number(values["concurrent-calls"]);
  const t0 = performance.now();
  for (let done = 0; done < total; done += 50)
    await Promise.all(Array.from({ length: 50 }, (_, j) => invoke(done + j)));
  const perS = Math.round(total / ((performance.now() - t0) / 1000));
  console.log(
    JSON.stringify({ invoke_p50_ms: pct(0.5), invoke_p99_ms: pct(0.99), invokes_per_s: perS, calls: samples.length }),
  );
} finally {
  serve.kill("SIGTERM");
  await serve.exited;
}
