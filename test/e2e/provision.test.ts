import { afterAll, beforeAll, expect, test } from "bun:test";
import { appendFileSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  b64,
  freePort,
  type Proc,
  cli as runCli,
  runTask,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// `propeller provision` against a real serve: upstream's config.toml, a proplet that starts from it alone, and a
// real mosquitto that applies the same identities and topic rules from the files provision writes.

let s: Serve;
let dir: string;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1"] });
  dir = tempDir();
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const cli = (args: string[]) => runCli(args, { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });

type Config = Record<string, { tenant_id: string; entity_id: string; api_key: string; channel_id: string }>;
const read = (file: string) => Bun.TOML.parse(readFileSync(file, "utf8")) as Config;

test("provision writes config.toml (0600); a proplet started from it alone joins and runs a task", async () => {
  const file = join(dir, "config.toml");
  const r = cli(["provision", "--proplets", "2", "-f", file, "--mosquitto", join(dir, "mq")]);
  expect(r.code).toBe(0);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  const cfg = read(file);
  expect(Object.keys(cfg)).toEqual(["manager", "proplet1", "proplet2", "proxy"]);
  expect(cfg.proplet2).toMatchObject({ tenant_id: "default", channel_id: "default" });
  let p: Proc | undefined;
  try {
    // The line provision prints is what starts it (this serve's MQTT port is not the proplet's default).
    const line = r.stdout.split("\n").find((l) => l.trim().endsWith("propeller proplet"))!;
    const said = Object.fromEntries(
      line
        .trim()
        .split(" ")
        .slice(0, -2)
        .map((kv) => kv.split("=") as [string, string]),
    );
    expect(said).toEqual({
      PROPLET_CONFIG_FILE: file,
      PROPLET_CONFIG_SECTION: "proplet1",
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    });
    p = spawnPropeller(["proplet"], { ...said, PROPLET_CONFIG_SECTION: "proplet2", PROPLET_LIVELINESS_INTERVAL: "1" });
    await untilAlive(s.url, cfg.proplet2!.entity_id);
    const t = await runTask(s.url, {
      name: "add",
      file: b64("add"),
      inputs: [4, 5],
      proplet_id: cfg.proplet2!.entity_id,
    });
    expect(t).toMatchObject({ state: 3, results: "9" });
  } finally {
    await p?.kill("SIGKILL");
  }
  const added = cli(["provision", "add-proplets", "1", "-f", file]);
  expect(added.stdout).toContain("(total: 3)");
  expect(added.stdout).toContain(`PROPLET_CONFIG_SECTION=proplet3 PROPLET_MQTT_ADDRESS=mqtt://127.0.0.1:${s.mqttPort}`);
  expect(Object.keys(read(file))).toEqual(["manager", "proplet1", "proplet2", "proplet3", "proxy"]);
});

test("a real mosquitto with provision's files admits the identities, refuses a wrong key, and applies the ACL", async () => {
  const cfg = read(join(dir, "config.toml"));
  const bin = Bun.which("mosquitto") ?? Bun.which("mosquitto", { PATH: "/usr/sbin:/usr/bin" });
  if (!bin) throw new Error("mosquitto is not installed: apt-get install mosquitto (.ci/run does)");
  const port = await freePort();
  const conf = join(dir, "mq", "mosquitto.conf");
  // Started as root, mosquitto drops to its own user, who cannot read files made for root: stay root here.
  appendFileSync(conf, `listener ${port} 127.0.0.1\nuser root\n`);
  const broker = Bun.spawn([bin, "-c", conf], { stdout: "ignore", stderr: "pipe" });
  const url = `mqtt://127.0.0.1:${port}`;
  const login = (section: string) => ({
    clientId: cfg[section]!.entity_id,
    username: cfg[section]!.entity_id,
    password: cfg[section]!.api_key,
    reconnectPeriod: 0,
  });
  try {
    const proplet = await until("mosquitto to admit proplet1", () => mqtt.connectAsync(url, login("proplet1")), 5000);
    const wrong = await mqtt
      .connectAsync(url, { ...login("proplet2"), password: "not-the-key" })
      .then(() => "connected")
      .catch((e: Error) => e.message);
    expect(wrong).toContain("Not authorized");
    const starts: string[] = [];
    proplet.on("message", (_t, payload) => starts.push(payload.toString()));
    await proplet.subscribeAsync("m/default/c/default/control/manager/start");
    // Another proplet may not send start messages; the manager may.
    const other = await mqtt.connectAsync(url, login("proplet2"));
    await other.publishAsync("m/default/c/default/control/manager/start", "forged", { qos: 1 });
    const manager = await mqtt.connectAsync(url, login("manager"));
    await manager.publishAsync("m/default/c/default/control/manager/start", "real", { qos: 1 });
    await until("the manager's start to arrive", () => starts.includes("real"), 3000);
    expect(starts).toEqual(["real"]);
    for (const c of [proplet, other, manager]) await c.endAsync();
  } finally {
    broker.kill("SIGKILL");
  }
});
