import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
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

// Credentials over their lifetime, with real processes: `certs renew` re-issues serve's certificate from the same
// CA (a proplet that trusts only the CA still connects); serve warns about a certificate that expires within 30
// days (log and metric); a join token gives a new proplet its identity and the CA (pinned by the token's hash),
// and expired, revoked, reused and wrongly pinned tokens are refused.

let certs: string;
let s: Serve;
let mqttTls: number;
/** The data dir of the proplet that joined in the first test: its identity and the CA. */
let joinedDir: string;
const procs: Proc[] = [];

const openssl = () => {
  const bin = Bun.which("openssl");
  if (!bin) throw new Error("openssl is not installed: apt-get install openssl (.ci/run does)");
  return bin;
};
const serial = (file: string) =>
  Bun.spawnSync([openssl(), "x509", "-in", file, "-noout", "-serial", "-enddate"]).stdout.toString();

/** serve over TLS; again on the same ports, for a restart that its proplets find. */
const startTls = async (again?: Serve) => {
  if (!again) mqttTls = await freePort();
  return startServe({
    ...(again ? { ports: { http: again.httpPort, mqtt: again.mqttPort }, dataDir: again.dataDir } : {}),
    tlsCa: readFileSync(join(certs, "ca.pem"), "utf8"),
    extra: [
      ...["--tls-cert", join(certs, "server.pem"), "--tls-key", join(certs, "server.key")],
      ...["--mqtt-tls-port", String(mqttTls), "--no-local-proplet", "--liveliness-interval", "1"],
    ],
  });
};

const admin = () => ({
  PROPELLER_URL: s.url,
  PROPELLER_TOKEN: tokenOf(s.url),
  PROPELLER_CA_CERT: join(certs, "ca.pem"),
});

/** A fresh join token's line, made with the CLI as an operator would. */
const joinToken = (...flags: string[]) => {
  const r = cli(["proplets", "join-token", ...flags], admin());
  if (r.code !== 0) throw new Error(`join-token failed: ${r.stderr}`);
  expect(r.stdout.trim().split("\n")).toHaveLength(1);
  return r.stdout.trim();
};

/** `propeller proplet --join`, in its own data dir. */
const joiner = (token: string, dir = tempDir("propeller-joiner-"), url = s.url) => {
  const p = spawnPropeller(["proplet", "--join", url, "--token", token], {
    PROPLET_DATA_DIR: dir,
    PROPLET_LIVELINESS_INTERVAL: "1",
  });
  procs.push(p);
  return { p, dir };
};

const joinTokens = async () =>
  (await http(`${s.url}/join-tokens`)).body.join_tokens as { id: string; uses: number; joined: string[] }[];

beforeAll(async () => {
  certs = join(tempDir(), "certs");
  const made = cli(["certs", "create", "--host", "localhost", "--host", "127.0.0.1", "--dir", certs]);
  if (made.code !== 0) throw new Error(`certs create failed: ${made.stderr}`);
  s = await startTls();
});
afterAll(async () => {
  for (const p of procs) await p.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

test("join: a valid token gives a proplet its identity and the CA; it runs a task, and later starts need no --join", async () => {
  const token = joinToken("--ttl", "1h", "--name", "edge-1");
  const { p, dir } = joiner(token);
  await until("the proplet to join", () => existsSync(join(dir, "identity.json")), 15_000).catch((e) => {
    throw new Error(`${e}\n${p.output()}`);
  });
  const identity = JSON.parse(readFileSync(join(dir, "identity.json"), "utf8"));
  joinedDir = dir;
  expect(statSync(join(dir, "identity.json")).mode & 0o777).toBe(0o600);
  expect(readFileSync(join(dir, "ca.pem"), "utf8")).toBe(readFileSync(join(certs, "ca.pem"), "utf8"));
  expect(identity).toMatchObject({ name: "edge-1", mqtt_address: `mqtts://localhost:${mqttTls}` });
  await untilAlive(s.url, identity.entity_id, 15_000);
  const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3], proplet_id: identity.entity_id });
  expect(t).toMatchObject({ state: 3, results: "5" });
  expect((await joinTokens()).find((j) => j.joined.includes(identity.entity_id))).toMatchObject({ uses: 1 });
  // An FL round on it: the URL it joined is its gateway's, where it fetches its model and dataset with its key over
  // HTTPS (site CA). Without that its model fetch was sent without the key, and the round got no update.
  const zero = { w: Array(12).fill(0), b: Array(3).fill(0) };
  expect((await http(`${s.url}/fl/models`, "POST", { version: 0, model: zero })).status).toBe(201);
  const data = Array.from({ length: 30 }, (_, i) => ({ x: [i % 3, 1, 0, 0.5], y: i % 3 }));
  expect((await http(`${s.url}/fl/datasets/edge-1`, "POST", { data })).status).toBe(201);
  const fl = await http(`${s.url}/fl/experiments`, "POST", {
    experiment_id: "joined",
    participants: ["edge-1"],
    hyperparams: { epochs: 1, lr: 0.5, batch_size: 10 },
    timeout_s: 30,
    task_file: b64("fl-client"),
  });
  expect(fl.status).toBe(200);
  const round = await until(
    "the joined proplet's round to end",
    async () => {
      const r = (await http(`${s.url}/fl/experiments/joined`)).body.round_list[0];
      return r?.state !== "running" && r;
    },
    30_000,
  );
  expect({ state: round.state, error: round.error }).toEqual({ state: "completed", error: undefined });

  // Restarted on the same data dir, without --join: the same identity, over MQTT/TLS with the kept CA.
  await p.kill("SIGTERM");
  const again = spawnPropeller(["proplet"], { PROPLET_DATA_DIR: dir, PROPLET_LIVELINESS_INTERVAL: "1" });
  procs.push(again);
  await until("the restarted proplet to say who it is", () => again.output().includes(identity.entity_id), 10_000);
  const t2 = await runTask(s.url, { name: "add", file: b64("add"), inputs: [4, 5], proplet_id: identity.entity_id });
  expect(t2).toMatchObject({ state: 3, results: "9" });
  await again.kill("SIGTERM");

  // Started again with --join and its spent token (a unit's command line): the kept identity, no join asked.
  const same = joiner(token, dir);
  await until("the kept identity", () =>
    same.p.output().includes(`already joined as ${identity.entity_id} with this token`),
  );
  await same.p.kill("SIGTERM");

  // Revoked, then given a new token: it joins again as a new identity (it kept the revoked one, refused forever).
  expect((await http(`${s.url}/entities/${identity.entity_id}`, "DELETE")).status).toBe(204);
  // Its URL typed as --url takes it, without a scheme: https, since the token pins the site CA.
  const bare = s.url.replace(/^https:\/\//, "");
  const renewed = joiner(joinToken("--ttl", "1h", "--name", "edge-1b"), dir, bare);
  await until(
    "the new identity",
    () => JSON.parse(readFileSync(join(dir, "identity.json"), "utf8")).name === "edge-1b",
  );
  const newId = JSON.parse(readFileSync(join(dir, "identity.json"), "utf8")).entity_id;
  expect(newId).not.toBe(identity.entity_id);
  // The warning follows the file's write: wait for it rather than read the output the moment the file appears.
  await until("the replacement to be said", () =>
    renewed.p.output().includes(`${identity.entity_id}'s identity in ${dir} is replaced`),
  );
  await untilAlive(s.url, newId, 15_000);
  await renewed.p.kill("SIGTERM");

  // The token was for one proplet: a second one is refused, and nothing is written.
  const second = joiner(token);
  expect(await second.p.proc.exited).toBe(1);
  expect(second.p.output()).toContain("invalid join token");
  expect(existsSync(join(second.dir, "identity.json"))).toBe(false);
}, 60_000);

test("join: a token whose CA hash is not the site's is refused before the token is sent", async () => {
  const token = joinToken();
  const forged = token.replace(/\.[0-9a-f]{64}$/, `.${"0".repeat(64)}`);
  expect(forged).not.toBe(token);
  const { p, dir } = joiner(forged);
  expect(await p.proc.exited).toBe(1);
  expect(p.output()).toContain("is not the one the join token pins");
  expect(existsSync(join(dir, "identity.json"))).toBe(false);
  // serve never saw the secret: the token is unspent, and it still works with its own hash.
  const id = (await joinTokens()).find((j) => j.uses === 0 && j.joined.length === 0);
  expect(id).toBeDefined();
  const ok = joiner(token);
  await until("the proplet to join", () => existsSync(join(ok.dir, "identity.json")), 15_000);
  await ok.p.kill("SIGTERM");
}, 30_000);

test("join: a server that is not the site's, with its own CA, never receives the token", async () => {
  // The attacker's server: a CA and certificate of its own for the same names, answering /join/ca with its CA.
  const theirs = join(tempDir(), "theirs");
  expect(cli(["certs", "create", "--host", "localhost", "--host", "127.0.0.1", "--dir", theirs]).code).toBe(0);
  const seen: string[] = [];
  const hostile = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    tls: {
      cert: readFileSync(join(theirs, "server.pem"), "utf8"),
      key: readFileSync(join(theirs, "server.key"), "utf8"),
    },
    async fetch(req) {
      seen.push(`${req.method} ${new URL(req.url).pathname} ${await req.text()}`);
      if (new URL(req.url).pathname === "/join/ca") return new Response(readFileSync(join(theirs, "ca.pem"), "utf8"));
      return Response.json({ error: "nope" }, { status: 401 });
    },
  });
  try {
    const token = joinToken();
    const { p, dir } = joiner(token, undefined, `https://localhost:${hostile.port}`);
    expect(await p.proc.exited).toBe(1);
    expect(p.output()).toContain("is not the one the join token pins");
    expect(seen).toEqual(["GET /join/ca "]);
    expect(seen.join()).not.toContain(token.slice(4, 40));
    expect(existsSync(join(dir, "identity.json"))).toBe(false);
  } finally {
    hostile.stop(true);
  }
}, 30_000);

test("join: expired and revoked tokens are refused; serve stays healthy", async () => {
  const expiring = joinToken("--ttl", "1s");
  const revoked = joinToken();
  const list = await joinTokens();
  const revokedId = list.at(-1)!.id;
  const r = cli(["proplets", "join-token-revoke", revokedId], admin());
  expect(r.code).toBe(0);
  await Bun.sleep(1200);
  for (const token of [expiring, revoked]) {
    const { p, dir } = joiner(token);
    expect(await p.proc.exited).toBe(1);
    expect(p.output()).toContain("invalid join token");
    expect(existsSync(join(dir, "identity.json"))).toBe(false);
  }
  expect((await http(`${s.url}/health`)).status).toBe(200);
  expect((await joinTokens()).find((j) => j.id === revokedId)).toMatchObject({ uses: 0 });
}, 30_000);

test("certs renew keeps the CA; a proplet that trusts only the CA reconnects to serve's renewed certificate", async () => {
  // The proplet that joined in the first test: it holds the CA, nothing else of the site's TLS.
  const old = spawnPropeller(["proplet"], { PROPLET_DATA_DIR: joinedDir, PROPLET_LIVELINESS_INTERVAL: "1" });
  procs.push(old);
  const id = JSON.parse(readFileSync(join(joinedDir, "identity.json"), "utf8")).entity_id;
  await untilAlive(s.url, id, 15_000);

  const before = serial(join(certs, "server.pem"));
  const caBefore = readFileSync(join(certs, "ca.pem"), "utf8");
  // Renewed for 10 days: also the short-lived certificate the expiry warning is about.
  const r = cli(["certs", "renew", "--dir", certs, "--days", "10"]);
  expect(r.code).toBe(0);
  expect(readFileSync(join(certs, "ca.pem"), "utf8")).toBe(caBefore);
  expect(serial(join(certs, "server.pem"))).not.toBe(before);
  const v = Bun.spawnSync([openssl(), "verify", "-CAfile", join(certs, "ca.pem"), join(certs, "server.pem")]);
  expect(v.stdout.toString().trim()).toBe(`${join(certs, "server.pem")}: OK`);
  const text = Bun.spawnSync([
    openssl(),
    "x509",
    "-in",
    join(certs, "server.pem"),
    "-noout",
    "-text",
  ]).stdout.toString();
  expect(text).toContain("DNS:localhost, IP Address:127.0.0.1"); // the hosts of the certificate it renewed
  const listed = cli(["certs", "list", "--dir", certs, "--json"]);
  const server = JSON.parse(listed.stdout).certificates.find((c: { file: string }) => c.file === "server.pem");
  expect(server).toMatchObject({ subject: "localhost", days_left: 9, warning: "! renew" });

  // serve restarted on the same ports with it: a warning in its log and in /metrics.
  await s.kill("SIGTERM");
  s = await startTls(s);
  expect(s.output()).toMatch(/certificate server expires on \S+ \(in 9 days\): renew it/);
  const metrics = await (
    await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${tokenOf(s.url)}` }, tls: { ca: caBefore } })
  ).text();
  const seconds = Number(/propeller_certificate_expiry_seconds\{cert="server"\} (\S+)/.exec(metrics)?.[1]);
  expect(seconds).toBeGreaterThan(9 * 86400);
  expect(seconds).toBeLessThan(10 * 86400);
  expect(metrics).toMatch(/propeller_certificate_expiry_seconds\{cert="ca"\} \d+/);

  // openssl, trusting only the CA, accepts what serve now presents, and it is the renewed certificate.
  const handshake = Bun.spawnSync(
    [openssl(), "s_client", "-connect", `127.0.0.1:${mqttTls}`, "-CAfile", join(certs, "ca.pem")].concat([
      "-verify_return_error",
      "-servername",
      "localhost",
    ]),
    { stdin: new TextEncoder().encode("") },
  ).stdout.toString();
  expect(handshake).toContain("Verify return code: 0 (ok)");
  const presented = Bun.spawnSync([openssl(), "x509", "-noout", "-serial", "-enddate"], {
    stdin: new TextEncoder().encode(handshake),
  }).stdout.toString();
  expect(presented).toBe(serial(join(certs, "server.pem")));

  // The proplet, never told of the renewal, reconnects and runs a task.
  await untilAlive(s.url, id, 20_000);
  const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [40, 2], proplet_id: id });
  expect(t).toMatchObject({ state: 3, results: "42" });
  expect(old.output()).not.toContain("certificate verify failed");
}, 60_000);
