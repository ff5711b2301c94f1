import { afterAll, beforeAll, expect, test } from "bun:test";
import type mqtt from "mqtt";
import { b64, cli, http, peer, type Serve, startServe, tokenOf, until } from "../helpers.ts";

// What a hostile proplet writes reaches an admin's terminal through the CLI: a result for an invented run id is
// kept as a run (every execution is recorded), its results and error the proplet's own, and a proplet names
// itself. Terminal escapes in them (OSC 52 sets the clipboard, CSI 2J clears the screen, OSC 0 the title) were
// printed as they were by `tasks runs`, `tasks get` and `proplets list`; now every control character but a
// record's newline and tab is shown escaped.

const T = "m/default/c/default";
const ESC = "\u001b";
const EVIL = `${ESC}]52;c;ZWNobyBwd25lZA==\u0007${ESC}[2J${ESC}]0;owned\u0007\u009b31m`;
let s: Serve;
let attacker: mqtt.MqttClient;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  attacker = await peer(s, "proplet", "painter");
}, 30_000);

afterAll(async () => {
  attacker?.end(true);
  await s?.kill("SIGKILL");
});

test("a proplet's escape sequences are shown escaped by the CLI, never sent to the terminal", async () => {
  const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
  await attacker.publishAsync(
    `${T}/control/proplet/create`,
    JSON.stringify({ proplet_id: "painter", metadata: { description: EVIL, hostname: EVIL } }),
    { qos: 1 },
  );
  // A task's name holding them is refused at create (a name is one line without control characters).
  const named = await http(`${s.url}/tasks`, "POST", { name: `add${EVIL}`, file: b64("add") });
  expect(named.status).toBe(400);
  expect(named.body.error).toContain("name: must be one line without control characters");
  const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") });
  // Given to painter (a result for an unknown run is kept only from a proplet the task was given).
  expect((await http(`${s.url}/tasks/${c.body.id}/start`, "POST")).status).toBe(200);
  await until("the task on painter", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
  // (A run id is letters, digits and . _ : - on the wire: one with an escape is refused whole, test below.)
  const result = { task_id: c.body.id, proplet_id: "painter", run_id: "r-painted", results: EVIL, error: EVIL };
  await attacker.publishAsync(`${T}/control/proplet/results`, JSON.stringify(result), { qos: 1 });
  // Its current run, and the one painter reported.
  await until("the run to be kept", async () => (await http(`${s.url}/tasks/${c.body.id}/runs`)).body.total === 2);
  for (const args of [
    ["tasks", "runs", c.body.id],
    ["tasks", "list"],
    ["tasks", "get", c.body.id],
    ["proplets", "list"],
    ["proplets", "get", "painter"],
  ]) {
    const r = cli(args, env);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain(ESC);
    expect(r.stdout).not.toContain("\u0007");
    expect(r.stdout).not.toContain("\u009b");
  }
  expect(cli(["tasks", "runs", c.body.id], env).stdout).toContain("\\x1b]52;c;");
  expect((await http(`${s.url}/health`)).status).toBe(200);
}, 30_000);

test("a proplet's ids in serve's log cannot forge a line or carry an escape sequence", async () => {
  const forged = `x\n[manager] \u2714 FORGED line${ESC}]0;owned\u0007`;
  const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") });
  for (const body of [
    { task_id: forged, proplet_id: "painter", run_id: "r1", results: "", error: null },
    // Refused whole by the schema: a run id is letters, digits and . _ : - (src/core/messages.ts).
    { task_id: c.body.id, proplet_id: "painter", run_id: `r2${forged}`.slice(0, 64), results: "", error: null },
  ])
    await attacker.publishAsync(`${T}/control/proplet/results`, JSON.stringify(body), { qos: 1 });
  await until("the forged task id to be logged", () => s.output().includes("FORGED"));
  expect(s.output()).not.toContain(ESC);
  expect(
    s
      .output()
      .split("\n")
      .some((l) => l.startsWith("[manager] \u2714 FORGED")),
  ).toBe(false);
  expect((await http(`${s.url}/tasks/${c.body.id}/runs`)).body.total).toBe(0);
  expect((await http(`${s.url}/health`)).status).toBe(200);
}, 30_000);

test("a workflow's or job's name with a C1 control (8-bit CSI) or a line separator is refused naming the field", async () => {
  const task = [{ name: "add", file: b64("add") }];
  for (const path of ["/workflows", "/jobs"])
    for (const name of ["ok\u009b31mred", "one\u2028two"]) {
      const r = await http(`${s.url}${path}`, "POST", { name, tasks: task });
      expect(r.status).toBe(400);
      expect(r.body.error).toContain("name: must be one line without control characters");
    }
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
