// Fleet benchmark: the CPU a `propeller serve` (embedded broker, SQLite, no local proplet) spends while 1,000
// simulated proplets announce themselves and heartbeat every second. With authentication on (the default), each
// simulated proplet is an identity of its own on a connection of its own, as the broker lets a proplet speak only
// about itself; with --no-auth they share --connections connections. The serve's CPU time is read from /proc.
// Prints one JSON object as the last stdout line, with `manager_cpu_percent` (percent of one core),
// `manager_rss_mib` and `alive_at_end` (proplets the manager counts alive when the measurement ends).
// Then the same fleet against Debian's mosquitto (its own instance on a free port, anonymous, one subscriber taking
// every proplet message as the manager would): `mosquitto_cpu_percent` and `ratio_to_mosquitto`, the figure that
// travels between machines: serve's CPU per heartbeat received over mosquitto's. Per heartbeat, because the one
// client process that plays the fleet falls behind its 10,000 beats a second on a loaded machine, and by more in
// one half of the run than in the other (7 to 30 % apart in runs of issue 30): a broker sent fewer beats spends
// less. `cpu_percent_ratio` is the plain ratio of the two CPU figures. Each CPU figure is split into user and
// system (kernel) time. --no-mosquitto skips mosquitto.
//
//   bun scripts/bench/fleet.ts [--proplets 1000] [--seconds 30] [--no-auth [--connections 20]] [--no-mosquitto]
//   bun scripts/bench/fleet.ts --proplets 10000 --no-mosquitto --profile DIR   (a markdown CPU profile of serve)

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { statFields } from "../../src/core/procstat.ts";
import { scriptArgs } from "../args.ts";
import { adminToken, authHeaders, freePort, mqttLogin, rssMib, serveArgs, waitForHealth } from "./lib.ts";

const { values: opt } = scriptArgs(
  import.meta.path,
  {
    options: {
      proplets: { type: "string", default: "1000" },
      connections: { type: "string", default: "20" },
      seconds: { type: "string", default: "30" },
      "no-auth": { type: "boolean", default: false },
      "no-mosquitto": { type: "boolean", default: false },
      profile: { type: "string", description: "directory for a CPU profile (markdown) of the serve process" },
    },
  },
  { proplets: { min: 1 }, connections: { min: 1 }, seconds: { above: 0 } },
);
const N = Number(opt.proplets);
// Told now, not after serve's half of the run: the comparison needs Debian's mosquitto.
const MOSQUITTO = opt["no-mosquitto"] ? undefined : (Bun.which("mosquitto") ?? Bun.which("/usr/sbin/mosquitto"));
if (!opt["no-mosquitto"] && !MOSQUITTO) {
  process.stderr.write("error: mosquitto is not installed (apt-get install mosquitto), or run with --no-mosquitto\n");
  process.exit(2);
}
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

/**
 * The fleet against a broker on `port`: C connections, each proplet announced, then beating once a second (spread
 * evenly over the second); `pid`'s CPU is read over SECONDS after a 5 s warm-up. `login` gives a connection's
 * credentials; `during` runs once the fleet is warm, `after` at the end of the measurement.
 */
async function drive(port: number, pid: number, login: (id: string) => Promise<object>, during?: () => Promise<void>) {
  const clients: mqtt.MqttClient[] = [];
  for (let i = 0; i < C; i++) {
    const id = AUTH ? ids[i]! : `fleet-${i}`;
    clients.push(await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, ...(await login(id)) }));
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
  await during?.();
  const cpu0 = userSystem(pid);
  const beats0 = beats;
  const t0 = performance.now();
  await Bun.sleep(SECONDS * 1000);
  const cpu1 = userSystem(pid);
  const elapsed = (performance.now() - t0) / 1000;
  const [user, system] = [cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]];
  const rate = (beats - beats0) / elapsed;
  const out = {
    elapsed,
    rate,
    cpuPercent: +(((user + system) / elapsed) * 100).toFixed(1),
    userPercent: +((user / elapsed) * 100).toFixed(1),
    systemPercent: +((system / elapsed) * 100).toFixed(1),
    /** CPU µs per heartbeat sent in the measurement. */
    usPerBeat: ((user + system) * 1e6) / (rate * elapsed),
    rss: rssMib(pid),
  };
  for (const t of timers) clearInterval(t);
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return out;
}

/** A process's user and system CPU seconds, from /proc. */
function userSystem(pid: number): [number, number] {
  const f = statFields(readFileSync(`/proc/${pid}/stat`, "utf8"));
  return [Number(f[11]) / 100, Number(f[12]) / 100];
}

let alive = 0;
const aliveNow = async () => {
  const res = await fetch(`${url}/proplets?status=active&limit=1`, { headers: authHeaders(token) });
  return ((await res.json()) as { total: number }).total;
};
const ours = await drive(
  mqttPort,
  serve.pid,
  (id) => (AUTH ? mqttLogin(url, token, "proplet", id) : Promise.resolve({})),
  async () => {
    alive = await aliveNow();
  },
);
const aliveAtEnd = await aliveNow();
// A clean exit writes the CPU profile.
serve.kill(opt.profile ? "SIGTERM" : "SIGKILL");
await serve.exited;
rmSync(dir, { recursive: true, force: true });

// The same fleet against Debian's mosquitto (an instance of our own on a free port), with one subscriber taking
// every proplet message as the manager would: what a plain broker spends on those connections and messages.
let mosquitto: Awaited<ReturnType<typeof drive>> | undefined;
if (!opt["no-mosquitto"]) {
  const port = await freePort();
  const mdir = mkdtempSync(join(tmpdir(), "propeller-fleet-mosq-"));
  const conf = [`listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false", "max_connections -1"];
  writeFileSync(join(mdir, "m.conf"), `${conf.join("\n")}\n`);
  const bin = MOSQUITTO!;
  const m = Bun.spawn([bin, "-c", join(mdir, "m.conf")], { stdout: "ignore", stderr: "ignore" });
  try {
    let sub: mqtt.MqttClient | undefined;
    for (let i = 0; !sub; i++) {
      try {
        sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "manager", reconnectPeriod: 0 });
      } catch (e) {
        if (i > 100) throw e;
        await Bun.sleep(50);
      }
    }
    await sub.subscribeAsync(`${base}/#`, { qos: 1 });
    say("mosquitto:");
    mosquitto = await drive(port, m.pid, () => Promise.resolve({}));
    await sub.endAsync(true);
  } finally {
    m.kill("SIGKILL");
    await m.exited;
    rmSync(mdir, { recursive: true, force: true });
  }
}
console.log(
  JSON.stringify({
    proplets: N,
    alive_at_start: alive,
    seconds: +ours.elapsed.toFixed(1),
    heartbeats_per_s: Math.round(ours.rate),
    manager_cpu_percent: ours.cpuPercent,
    manager_cpu_user_system_percent: [ours.userPercent, ours.systemPercent],
    manager_cpu_us_per_heartbeat: +ours.usPerBeat.toFixed(1),
    manager_rss_mib: +ours.rss.toFixed(1),
    ...(mosquitto
      ? {
          mosquitto_cpu_percent: mosquitto.cpuPercent,
          mosquitto_cpu_user_system_percent: [mosquitto.userPercent, mosquitto.systemPercent],
          mosquitto_heartbeats_per_s: Math.round(mosquitto.rate),
          mosquitto_cpu_us_per_heartbeat: +mosquitto.usPerBeat.toFixed(1),
          ratio_to_mosquitto: +(ours.usPerBeat / Math.max(mosquitto.usPerBeat, 0.1)).toFixed(2),
          cpu_percent_ratio: +(ours.cpuPercent / Math.max(mosquitto.cpuPercent, 0.1)).toFixed(2),
        }
      : {}),
    alive_at_end: aliveAtEnd,
    auth: AUTH,
  }),
);
