import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type mqtt from "mqtt";
import { b64, http, peer, type Serve, startServe, until } from "../helpers.ts";

// Results for run ids the manager never started (issue 26: every execution leaves a run) from a proplet with a
// real identity on a real socket, aimed at the manager's disk: each kept run is bounded in bytes (a result of
// megabytes is not stored whole), and the runs kept in all are bounded across tasks, not only per task.

const T = "m/default/c/default";
let s: Serve;
let attacker: mqtt.MqttClient;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  attacker = await peer(s, "proplet", "filler");
}, 30_000);

afterAll(async () => {
  attacker?.end(true);
  await s?.kill("SIGKILL");
});

const result = (body: Record<string, unknown>) =>
  attacker.publishAsync(`${T}/control/proplet/results`, JSON.stringify(body), { qos: 1 });

const task = async () =>
  (await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] })).body.id as string;

const runsOf = async (id: string) => (await http(`${s.url}/tasks/${id}/runs?limit=1000`)).body;

describe("results for unknown runs cannot fill the manager's disk", () => {
  test("a result and an error of 4 MiB for invented run ids are not stored whole", async () => {
    const id = await task();
    const big = "x".repeat(4 << 20);
    for (let i = 0; i < 3; i++)
      await result({ task_id: id, proplet_id: "filler", run_id: `big-${i}`, results: big, error: null });
    await result({ task_id: id, proplet_id: "filler", run_id: "big-error", results: "", error: big });
    const runs = await until("the four runs", async () => {
      const r = await runsOf(id);
      return r.total === 4 && r;
    });
    for (const r of runs.runs as { results?: unknown; error?: string; settled_error?: string; run_id: string }[]) {
      expect(JSON.stringify(r.results ?? null).length).toBeLessThanOrEqual(64 * 1024);
      expect((r.error ?? "").length).toBeLessThanOrEqual(64 * 1024 + 100);
      if (r.run_id !== "big-error") expect(r.settled_error).toContain("were not kept");
    }
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 60_000);

  test("invented run ids spread over many tasks add at most 2,000 runs in all", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 21; i++) ids.push(await task());
    for (const id of ids)
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          result({ task_id: id, proplet_id: "filler", run_id: `spread-${i}`, results: "", error: "x" }),
        ),
      );
    const total = async () => {
      let n = 0;
      for (const id of ids) n += (await runsOf(id)).total;
      return n;
    };
    // 4 runs of the first test count too: 1,996 are left for these tasks.
    await until("the runs to be kept", async () => (await total()) >= 1996, 30_000);
    await Bun.sleep(500);
    expect(await total()).toBe(1996);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 90_000);
});
