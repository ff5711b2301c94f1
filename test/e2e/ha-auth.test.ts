import { afterAll, beforeAll, expect, test } from "bun:test";
import { appendFileSync, copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import {
  b64,
  cli,
  freePort,
  http,
  type Proc,
  runTask,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";
import { type Postgres, startManager, startPostgres } from "../postgres.ts";

// docs/high-availability.md, step by step, with authentication on everywhere: identities provisioned into the
// site's PostgreSQL (`provision --mosquitto`), a real mosquitto that admits only them (its password file and ACL),
// two managers logging in as [manager] with their OCI proxies as [proxy], a proplet from [proplet]. A task runs;
// the active manager is killed; the stand-by takes over and a new task runs.

type Config = Record<string, { tenant_id: string; entity_id: string; api_key: string; channel_id: string }>;

let pg: Postgres;
let dbUrl: string;
let mosquitto: ReturnType<typeof Bun.spawn> | undefined;
let mqttUrl: string;
let cfg: Config;
let configFile: string;
const procs: (Serve | Proc)[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  dbUrl = await pg.database("ha_auth");
});

afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
  mosquitto?.kill("SIGKILL");
  await pg?.stop();
});

const managerEnv = () => ({
  PROPELLER_DB_URL: dbUrl,
  MANAGER_ENTITY_ID: cfg.manager!.entity_id,
  MANAGER_API_KEY: cfg.manager!.api_key,
  PROXY_ENTITY_ID: cfg.proxy!.entity_id,
  PROXY_API_KEY: cfg.proxy!.api_key,
});
const manager = (dataDir: string, env: Record<string, string> = managerEnv(), extra: string[] = []) =>
  startManager({ dataDir, mqttUrl, env, extra });

test("provisioned mosquitto, PostgreSQL and two managers with authentication: a task runs before and after a fail-over", async () => {
  // 1. Identities into the site's database, through a first serve on its embedded broker (loopback only).
  const aDir = tempDir();
  const boot = await startServe({
    dataDir: aDir,
    extra: ["--storage", "postgres", "--no-local-proplet"],
    env: { PROPELLER_DB_URL: dbUrl },
  });
  procs.push(boot);
  const dir = tempDir();
  configFile = join(dir, "config.toml");
  const made = cli(["provision", "--proplets", "1", "-f", configFile, "--mosquitto", join(dir, "mq")], {
    PROPELLER_URL: boot.url,
    PROPELLER_TOKEN: tokenOf(boot.url),
  });
  expect(made.code).toBe(0);
  await boot.kill("SIGTERM");
  cfg = Bun.TOML.parse(readFileSync(configFile, "utf8")) as Config;

  // 2. mosquitto with provision's files (and a listener).
  const bin = Bun.which("mosquitto", { PATH: `/usr/sbin:/usr/bin:${process.env.PATH}` });
  if (!bin) throw new Error("mosquitto is not installed: apt-get install mosquitto (.ci/run does)");
  const port = await freePort();
  const conf = join(dir, "mq", "mosquitto.conf");
  appendFileSync(conf, `listener ${port} 127.0.0.1\n${process.getuid?.() === 0 ? "user root\n" : ""}`);
  mosquitto = Bun.spawn([bin, "-c", conf], { stdout: "ignore", stderr: "ignore" });
  mqttUrl = `mqtt://127.0.0.1:${port}`;
  // Authentication is on: an anonymous client is refused.
  const anonymous = await until("mosquitto to answer", () =>
    mqtt
      .connectAsync(mqttUrl, { reconnectPeriod: 0, connectTimeout: 2000 })
      .then((c) => {
        c.end();
        return "connected";
      })
      .catch((e: Error) => (e.message.includes("Not authorized") ? e.message : undefined)),
  );
  expect(anonymous).toContain("Not authorized");

  // The report: with the manager's identity but none for its proxy, the proxy logged in anonymously, was
  // refused, and serve exited. Now it logs in as the manager and serve comes up.
  const { PROXY_ENTITY_ID: _i, PROXY_API_KEY: _k, ...managerOnly } = managerEnv();
  const lone = await manager(tempDir(), managerOnly);
  procs.push(lone);
  expect((await http(`${lone.url}/health`)).status).toBe(200);
  await lone.kill("SIGTERM");

  // 3. Two managers, each logging in as [manager], its proxy as [proxy].
  const a = await manager(aDir);
  procs.push(a);
  expect((await http(`${a.url}/health`)).body).toMatchObject({ role: "active", storage: "postgres" });
  const bDir = tempDir();
  copyFileSync(join(aDir, "admin.token"), join(bDir, "admin.token"));
  // The second one takes both identities from provision's file (--config): no key in its environment, where a
  // unit's Environment= shows it to `systemctl show`. The [manager] section was accepted and ignored.
  const b = await manager(bDir, { PROPELLER_DB_URL: dbUrl }, ["--config", configFile]);
  procs.push(b);
  expect((await http(`${b.url}/health`)).body).toMatchObject({ role: "standby", active_url: a.url });
  expect(a.output()).not.toContain("Not authorized");

  // 4. A proplet from its [proplet] section.
  const worker = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: mqttUrl,
    PROPLET_CONFIG_FILE: configFile,
    PROPLET_LIVELINESS_INTERVAL: "1",
  });
  procs.push(worker);
  const id = cfg.proplet!.entity_id;
  await untilAlive(b.url, id);
  expect(await runTask(b.url, { name: "add", file: b64("add"), inputs: [1, 2] })).toMatchObject({
    state: 3,
    results: "3",
  });

  // 5. Kill the active manager: the stand-by takes over, and a new task runs.
  await a.kill("SIGKILL");
  await until(
    "the stand-by to become active",
    async () => (await http(`${b.url}/health`)).body.role === "active",
    10_000,
  );
  await untilAlive(b.url, id, 15_000);
  const after = await runTask(b.url, { name: "add", file: b64("add"), inputs: [20, 22] }, 20_000).catch((e) => {
    throw new Error(`${e}\n--- b ---\n${b.output().slice(-3000)}\n--- worker ---\n${worker.output().slice(-2000)}`);
  });
  expect(after).toMatchObject({ state: 3, results: "42" });
  expect(b.output()).not.toContain("Not authorized");
}, 120_000);
