// Fleet benchmark: the CPU a `propeller serve` (embedded broker, SQLite, no local proplet) spends while 1,000
// simulated proplets announce themselves and heartbeat every second. With authentication on (the default), each
// simulated proplet is an identity of its own on a connection of its own, as the broker lets a proplet speak only
// about itself; with --no-auth they share --connections connections. The serve's CPU time is read from /proc.
// Prints one JSON object as the last stdout line, with `manager_cpu_percent` (percent of one core),
// `manager_rss_mib` and `alive_at_end` (proplets the manager counts alive when the measurement ends).
//
//   bun scripts/bench/fleet.ts [--proplets 1000] [--seconds 30] [--no-auth [--connections 20]]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { adminToken, authHeaders, cpuSeconds, freePort, mqttLogin, rssMib, serveArgs, waitForHealth } from "./lib.ts";

const { values: opt } = parseArgs({
  options: {
    proplets: { type: "string", default: "1000" },
    connections: { type: "string", default: "20" },
    seconds: { type: "string", default: "30" },
    "no-auth": { type: "boolean", default: false },
    profile: { type: "string", description: "directory for a CPU profile (markdown) of the serve process" },
  },
});
const N = Number(opt.proplets);
const AUTH = !opt["no-auth"];
const C = AUTH ? N : Number(opt.connections);
const SECONDS = Number(opt.seconds);
const root = join(import.meta.dir, "..", "..");
const say = (s: string) => process.stderr.write(`${s}\n`);

const dir = mkdtempSync(join(tmpdir(), "propeller-fleet-"));
const httpPort = await freePort();
const mqttPort = await freePort();
const serve = Bun.spawn(
  [
    process.execPath,
    ...(opt.profile ? ["--cpu-prof-md", `--cpu-prof-dir=${opt.profile}`] : []),
    join(root, "src/main.ts"),
    ...serveArgs(httpPort, mqttPort, dir, [
      "--no-local-proplet",
      ...(AUTH ? [] : ["--no-auth"]),
      // Every simulated proplet connects from loopback, as fast as it can: above the default cap of 2,000.
      ...["--mqtt-loopback-max-connections", String(Math.max(2000, C + 100))],
    ]),
  ],
  { stdout: "inherit", stderr: "inherit" },
);
const url = `http://127.0.0.1:${httpPort}`;
await waitForHealth(url);

const base = "m/default/c/default/control/proplet";
const token = adminToken(dir);
const ids = Array.from({ length: N }, (_, i) => `sim-${String(i).padStart(5, "0")}`);
const clients: mqtt.MqttClient[] = [];
for (let i = 0; i < C; i++) {
  const id = AUTH ? ids[i]! : `fleet-${i}`;
  const login = await mqttLogin(url, token, "proplet", id);
  clients.push(await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: id, ...login }));
}
const clientOf = (i: number) => clients[i % C]!;
for (const [i, id] of ids.entries()) {
  clientOf(i).publish(
    `${base}/create`,
    JSON.stringify({
      proplet_id: id,
      namespace: "default",
      metadata: { os: "linux", cpu_arch: "x86_64", proplet_version: "sim", max_tasks: 1, liveliness_interval_s: 1 },
    }),
    { qos: 1 },
  );
}
// Each proplet beats once a second, the fleet spread evenly over the second.
let beats = 0;
const timers = ids.map((id, i) =>
  setTimeout(
    () => {
      const beat = () => {
        clientOf(i).publish(
          `${base}/alive`,
          JSON.stringify({ proplet_id: id, status: "alive", namespace: "default", tasks: [] }),
          { qos: 0 },
        );
        beats++;
      };
      beat();
      timers[i] = setInterval(beat, 1000);
    },
    (i * 1000) / N,
  ),
);
say(`${N} proplets on ${C} connections; warming up 5 s…`);
await Bun.sleep(5000);
const res = await fetch(`${url}/proplets?status=active&limit=1`, { headers: authHeaders(token) });
const alive = ((await res.json()) as { total: number }).total;
const cpu0 = cpuSeconds(serve.pid);
const beats0 = beats;
const t0 = performance.now();
await Bun.sleep(SECONDS * 1000);
const cpu = cpuSeconds(serve.pid) - cpu0;
const elapsed = (performance.now() - t0) / 1000;
const rate = (beats - beats0) / elapsed;
const managerRss = rssMib(serve.pid);
const end = await fetch(`${url}/proplets?status=active&limit=1`, { headers: authHeaders(token) });
const aliveAtEnd = ((await end.json()) as { total: number }).total;
for (const t of timers) clearInterval(t);
await Promise.all(clients.map((c) => c.endAsync()));
// A clean exit writes the CPU profile.
serve.kill(opt.profile ? "SIGTERM" : "SIGKILL");
await serve.exited;
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify({
    proplets: N,
    alive_at_start: alive,
    seconds: +elapsed.toFixed(1),
    heartbeats_per_s: Math.round(rate),
    manager_cpu_percent: +((cpu / elapsed) * 100).toFixed(1),
    manager_rss_mib: +managerRss.toFixed(1),
    alive_at_end: aliveAtEnd,
    auth: AUTH,
  }),
);
