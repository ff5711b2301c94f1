// The embedded broker against mosquitto, with the same load from the same clients in one run: 4 publishers send
// ~70-byte result messages as fast as the broker takes them, 1 subscriber counts them for --seconds, at QoS 0 and at QoS 1.
// The embedded broker runs in a process of its own, with authentication and the ACL on, as `serve` runs it
// (publishers are proplet identities publishing results; the subscriber a manager identity). mosquitto (Debian's
// package) takes anyone, configured at its best for each QoS (below). JSON last line: {qos0: {propeller_msg_per_s, mosquitto_msg_per_s, ratio}, qos1: {…}}.
//   bun scripts/bench/broker.ts [--seconds 5]
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { scriptArgs } from "../args.ts";
import { freePort } from "./lib.ts";

const { values } = scriptArgs(import.meta.path, {
  options: {
    seconds: { type: "string", default: "5" },
    "embedded-on": { type: "string" },
    profile: { type: "string", description: "directory for a CPU profile (markdown) of the embedded broker" },
  },
});

const PUBLISHERS = 4;
const TOPIC = "m/default/c/default/control/proplet/results";
const KEY = "bench-key";

if (values["embedded-on"]) {
  // The child: the embedded broker alone, as serve starts it, with our authentication and ACL.
  const { startBroker } = await import("../../src/broker/broker.ts");
  const broker = await startBroker("127.0.0.1", Number(values["embedded-on"]), {
    authenticate: (id, key) => (key !== KEY ? undefined : id.startsWith("pub-") ? "proplet" : "manager"),
    channel: { domainId: "default", channelId: "default" },
  } as Parameters<typeof startBroker>[2]);
  process.stdout.write(`ready ${broker.port}\n`);
  process.once("SIGTERM", () => process.exit(0)); // a clean exit writes the CPU profile
  await new Promise(() => {});
}

const SECONDS = Number(values.seconds);
const say = (s: string) => process.stderr.write(`${s}\n`);

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: `probe-${i}`,
        username: "probe",
        password: KEY,
        reconnectPeriod: 0,
      });
      await c.endAsync();
      return;
    } catch {
      await Bun.sleep(50);
    }
  }
  throw new Error(`broker on ${port} did not start`);
}

/** Messages per second the subscriber received while publishers pushed as hard as they could. */
async function load(port: number, qos: 0 | 1): Promise<number> {
  const opts = (id: string) => ({ clientId: id, username: id, password: KEY, reconnectPeriod: 0 });
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, opts(`mgr-${qos}`));
  let received = 0;
  sub.on("message", () => received++);
  await sub.subscribeAsync(TOPIC, { qos });
  const pubs = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, opts(`pub-${qos}-${i}`)),
    ),
  );
  let running = true;
  const pump = async (c: mqtt.MqttClient) => {
    // A result naming its sender, as the broker's ACL checks a proplet's own messages (~64 bytes).
    const payload = Buffer.from(
      JSON.stringify({ task_id: "t", proplet_id: c.options.clientId, results: "x".repeat(8) }),
    );
    while (running) {
      if (qos === 1) {
        // A window of 100 unacknowledged messages per publisher.
        await Promise.all(Array.from({ length: 100 }, () => c.publishAsync(TOPIC, payload, { qos: 1 })));
      } else {
        for (let k = 0; k < 200; k++) c.publish(TOPIC, payload, { qos: 0 });
        const s = (c as unknown as { stream: { writableLength: number } }).stream;
        while (running && s.writableLength > 1 << 20) await Bun.sleep(1);
        await Bun.sleep(0);
      }
    }
  };
  const pumps = pubs.map(pump);
  await Bun.sleep(1000); // warm-up
  const start = received;
  const t0 = performance.now();
  await Bun.sleep(SECONDS * 1000);
  const rate = (received - start) / ((performance.now() - t0) / 1000);
  running = false;
  await Promise.allSettled(pumps);
  await Promise.all([...pubs, sub].map((c) => c.endAsync(true)));
  return rate;
}

async function measure(name: string, start: () => Promise<{ port: number; stop: () => void }>) {
  const out: Record<number, number> = {};
  for (const qos of [0, 1] as const) {
    const b = await start();
    try {
      await waitListening(b.port);
      out[qos] = await load(b.port, qos);
      say(`${name} QoS ${qos}: ${Math.round(out[qos])} msg/s`);
    } finally {
      b.stop();
    }
  }
  return out;
}

const embedded = await measure("propeller", async () => {
  const port = await freePort();
  const prof = values.profile ? ["--cpu-prof-md", `--cpu-prof-dir=${values.profile}`] : [];
  const p = Bun.spawn([process.execPath, ...prof, import.meta.path, "--embedded-on", String(port)], {
    stdout: "ignore",
    stderr: "inherit",
    env: { ...process.env, PROPELLER_LOG_LEVEL: "warn" },
  });
  return { port, stop: () => p.kill("SIGTERM") };
});
// mosquitto at its best for each QoS, not at its defaults: no in-flight or queue limit (aedes has none), and both
// with Nagle's algorithm (it batches QoS 0: ~300k against ~220k without) and without it (Nagle and delayed ACKs
// stall QoS 1: ~20k against ~93k). The higher of the two counts.
const mosquittoWith = (nodelay: boolean) =>
  measure(`mosquitto${nodelay ? " (TCP_NODELAY)" : ""}`, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "propeller-mosq-"));
    const conf = [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence false",
      "max_inflight_messages 0",
      "max_queued_messages 0",
      `set_tcp_nodelay ${nodelay}`,
    ];
    writeFileSync(join(dir, "m.conf"), `${conf.join("\n")}\n`);
    const p = Bun.spawn(["mosquitto", "-c", join(dir, "m.conf")], { stdout: "ignore", stderr: "ignore" });
    return { port, stop: () => p.kill("SIGKILL") };
  });
const [nagle, noDelay] = [await mosquittoWith(false), await mosquittoWith(true)];
const mosquitto = { 0: Math.max(nagle[0]!, noDelay[0]!), 1: Math.max(nagle[1]!, noDelay[1]!) };
const row = (q: 0 | 1) => ({
  propeller_msg_per_s: Math.round(embedded[q]!),
  mosquitto_msg_per_s: Math.round(mosquitto[q]!),
  ratio: +(embedded[q]! / mosquitto[q]!).toFixed(3),
});
console.log(JSON.stringify({ qos0: row(0), qos1: row(1), publishers: PUBLISHERS, seconds: SECONDS }));
