import { afterAll, beforeAll, expect, test } from "bun:test";
import type mqtt from "mqtt";
import { b64, http, peer, type Serve, startServe, until } from "../helpers.ts";

// The manager decodes a result with a quick check of the usual shape before zod (core/messages-plain.ts). A proplet
// with a real identity on a real socket sends results of hostile shapes, each for a run id of its own invention
// (the manager keeps a run for each result it accepts, test/attack/runs.test.ts): exactly those the schema accepts
// leave a run, own "__proto__" keys change nothing, and serve stays healthy.

const T = "m/default/c/default";
let s: Serve;
let attacker: mqtt.MqttClient;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  attacker = await peer(s, "proplet", "attacker");
  await attacker.publishAsync(`${T}/control/proplet/create`, JSON.stringify({ proplet_id: "attacker" }), { qos: 1 });
}, 30_000);

afterAll(async () => {
  attacker?.end(true);
  await s?.kill("SIGKILL");
});

test("results of hostile shapes: those the schema refuses leave no run, __proto__ keys change nothing", async () => {
  const c = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
  // Given to the attacker: a result for an unknown run is kept only from a proplet the task was given.
  expect((await http(`${s.url}/tasks/${c.body.id}/start`, "POST")).status).toBe(200);
  await until("the task on the attacker", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
  const id = JSON.stringify(c.body.id);
  const base = (run: string) => `"task_id":${id},"proplet_id":"attacker","run_id":"${run}"`;
  const accepted: Record<string, string> = {
    "ok-plain": `{${base("ok-plain")},"results":"3"}`,
    "ok-proto-top": `{"__proto__":{"error":"polluted","run_id":"ok-other"},${base("ok-proto-top")},"results":1}`,
    "ok-proto-results": `{${base("ok-proto-results")},"results":{"__proto__":{"polluted":true}}}`,
    "ok-nulls": `{${base("ok-nulls")},"results":null,"error":null}`,
    "ok-extra": `{${base("ok-extra")},"results":[],"extra":{"a":1}}`,
  };
  const refused: string[] = [
    `{${base("no-error-number")},"results":"","error":5}`,
    `{${base("no-results-absent")}}`,
    `{${base("no space")},"results":""}`,
    `{${base("x".repeat(65))},"results":""}`,
  ];
  for (const p of [...refused, ...Object.values(accepted)])
    await attacker.publishAsync(`${T}/control/proplet/results`, p, { qos: 1 });
  // The task's own current run left out.
  const runsOf = async () =>
    ((await http(`${s.url}/tasks/${c.body.id}/runs?limit=100`)).body.runs as Record<string, unknown>[]).filter(
      (r) => r.state !== 2,
    );
  await until("the accepted results' runs", async () => (await runsOf()).length >= 5);
  await Bun.sleep(500); // a refused one, sent first, would have been kept by now
  const runs = await runsOf();
  expect(runs.map((r) => r.run_id).sort()).toEqual(Object.keys(accepted).sort());
  for (const r of runs) expect(r.proplet_id).toBe("attacker");
  expect(runs.find((r) => r.run_id === "ok-proto-top")?.error ?? "").not.toContain("polluted");
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(attacker.connected).toBe(true);
  expect((await http(`${s.url}/health`)).status).toBe(200);
}, 30_000);
