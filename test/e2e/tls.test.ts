import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  cli,
  freePort,
  propletEnv,
  runTask,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// TLS with the site CA from `propeller certs create`: HTTPS for REST and the CLI, MQTT over TLS for proplets,
// client certificates when serve asks for them. openssl checks what `certs` wrote.

let s: Serve;
let certs: string;
let mqttTls: number;

beforeAll(async () => {
  certs = join(tempDir(), "certs");
  const made = cli(["certs", "create", "--host", "localhost", "--host", "127.0.0.1", "--dir", certs]);
  if (made.code !== 0) throw new Error(`certs create failed: ${made.stderr}`);
  const client = cli(["certs", "client", "edge-tls", "--dir", certs]);
  if (client.code !== 0) throw new Error(`certs client failed: ${client.stderr}`);
  mqttTls = await freePort();
  s = await startServe({
    tlsCa: readFileSync(join(certs, "ca.pem"), "utf8"),
    extra: [
      ...["--tls-cert", join(certs, "server.pem"), "--tls-key", join(certs, "server.key")],
      ...["--tls-client-ca", join(certs, "ca.pem"), "--mqtt-tls-port", String(mqttTls)],
      ...["--no-local-proplet", "--liveliness-interval", "1"],
    ],
  });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

test("certs create makes a CA and a server certificate that openssl verifies, keys 0600", () => {
  const openssl = Bun.which("openssl");
  if (!openssl) throw new Error("openssl is not installed: apt-get install openssl (.ci/run does)");
  for (const cert of ["server.pem", "edge-tls.pem"]) {
    const v = Bun.spawnSync([openssl, "verify", "-CAfile", join(certs, "ca.pem"), join(certs, cert)]);
    expect(v.stdout.toString().trim()).toBe(`${join(certs, cert)}: OK`);
  }
  const text = Bun.spawnSync([openssl, "x509", "-in", join(certs, "server.pem"), "-noout", "-text"]).stdout.toString();
  expect(text).toContain("DNS:localhost, IP Address:127.0.0.1");
  for (const key of ["ca.key", "server.key", "edge-tls.key"])
    expect(statSync(join(certs, key)).mode & 0o777).toBe(0o600);
});

test("the CLI talks HTTPS with --ca-cert, and says what to do without it", () => {
  const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
  const ok = cli(["tasks", "list", "--ca-cert", join(certs, "ca.pem")], env);
  expect(ok.code).toBe(0);
  const bad = cli(["tasks", "list"], env);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("--ca-cert");
});

test("a proplet joins over MQTT/TLS with the CA and its client certificate, and runs a task", async () => {
  const p = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: `mqtts://localhost:${mqttTls}`,
    PROPLET_MQTT_TLS_CA_CERT: join(certs, "ca.pem"),
    PROPLET_MQTT_TLS_CLIENT_CERT: join(certs, "edge-tls.pem"),
    PROPLET_MQTT_TLS_CLIENT_KEY: join(certs, "edge-tls.key"),
    PROPLET_LIVELINESS_INTERVAL: "1",
    ...(await propletEnv(s.url, "edge-tls")),
  });
  try {
    await untilAlive(s.url, "edge-tls");
    const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [20, 22], proplet_id: "edge-tls" });
    expect(t).toMatchObject({ state: 3, results: "42" });
  } finally {
    await p.kill("SIGKILL");
  }
});

test("without the CA, or without a client certificate, a proplet cannot connect and says why", async () => {
  const address = { PROPLET_MQTT_ADDRESS: `mqtts://localhost:${mqttTls}` };
  const noCa = spawnPropeller(["proplet"], { ...address, ...(await propletEnv(s.url, "no-ca")) });
  const noCert = spawnPropeller(["proplet"], {
    ...address,
    PROPLET_MQTT_TLS_CA_CERT: join(certs, "ca.pem"),
    ...(await propletEnv(s.url, "no-cert")),
  });
  try {
    await until("the missing CA to be named", () => noCa.output().includes("give the site CA"), 10_000);
    await until(
      "the missing client certificate to be named",
      () => noCert.output().includes("client certificate"),
      10_000,
    );
    for (const id of ["no-ca", "no-cert"]) {
      const r = await fetch(`${s.url}/proplets/${id}`, {
        headers: { authorization: `Bearer ${tokenOf(s.url)}` },
        tls: { ca: readFileSync(join(certs, "ca.pem"), "utf8") },
      });
      expect(r.status).toBe(404);
    }
  } finally {
    await noCa.kill("SIGKILL");
    await noCert.kill("SIGKILL");
  }
});
