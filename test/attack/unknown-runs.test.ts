import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type mqtt from "mqtt";
import { b64, http, peer, type Serve, startServe, until } from "../helpers.ts";

// Results for run ids the manager never started (issue 26: every execution leaves a run) from a proplet with a
// real identity on a real socket, aimed at the manager's disk and at the tasks' histories: only a proplet the task
// was given may add such a run (any proplet that knew a task's id wrote forged runs into it); each kept run is
// bounded in bytes (a result of megabytes is not stored whole), and the runs kept are bounded per task and per
// proplet, so one proplet cannot spend the budget meant for the others.

const T = "m/default/c/default";
let s: Serve;
let attacker: mqtt.MqttClient;
let stranger: mqtt.MqttClient;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  attacker = await peer(s, "proplet", "filler");
  stranger = await peer(s, "proplet", "stranger");
  // filler is a proplet with room for every task here: the tasks below are given to it.
  await attacker.publishAsync(
    `${T}/control/proplet/create`,
    JSON.stringify({ proplet_id: "filler", metadata: { max_tasks: 100 } }),
  );
  await until("filler to be listed", async () =>
    ((await http(`${s.url}/proplets`)).body.proplets as { id: string }[]).some((p) => p.id === "filler"),
  );
}, 30_000);

afterAll(async () => {
  attacker?.end(true);
  stranger?.end(true);
  await s?.kill("SIGKILL");
});

const result = (body: Record<string, unknown>) =>
  attacker.publishAsync(`${T}/control/proplet/results`, JSON.stringify(body), { qos: 1 });

/** A task started on filler (Running there: filler never answers). */
const task = async () => {
  const id = (await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] })).body
    .id as string;
  expect((await http(`${s.url}/tasks/${id}/start`, "POST")).status).toBe(200);
  await until(
    "the task to run on filler",
    async () => (await http(`${s.url}/tasks/${id}`)).body.proplet_id === "filler",
  );
  return id;
};

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
      return r.total === 5 && r; // and the task's own current run
    });
    for (const r of runs.runs as { results?: unknown; error?: string; settled_error?: string; run_id: string }[]) {
      expect(JSON.stringify(r.results ?? null).length).toBeLessThanOrEqual(64 * 1024);
      expect((r.error ?? "").length).toBeLessThanOrEqual(64 * 1024 + 100);
      if (r.run_id.startsWith("big-") && r.run_id !== "big-error") expect(r.settled_error).toContain("were not kept");
    }
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 60_000);

  test("a proplet the task was never given adds no run to it, whatever run ids it invents", async () => {
    const id = await task();
    const never = (await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] })).body.id;
    for (const t of [id, never])
      for (let i = 0; i < 5; i++)
        await stranger.publishAsync(
          `${T}/control/proplet/results`,
          JSON.stringify({ task_id: t, proplet_id: "stranger", run_id: `fake-${i}`, results: "", error: "pwned" }),
          { qos: 1 },
        );
    // filler's own result for an unknown run still counts: it was given the task.
    await result({ task_id: id, proplet_id: "filler", run_id: "real-unknown", results: "3", error: null });
    await until("filler's run", async () => (await runsOf(id)).total === 2); // and the task's current run
    await Bun.sleep(300);
    const ran = (await runsOf(id)).runs.map((r: { run_id: string }) => r.run_id);
    expect(ran).toContain("real-unknown");
    expect(ran.filter((r: string) => r.startsWith("fake-"))).toEqual([]);
    expect((await runsOf(never)).total).toBe(0);
  }, 60_000);

  test("invented run ids: at most 100 runs a task, and 200 from one proplet across its tasks", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await task());
    for (const id of ids)
      await Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          result({ task_id: id, proplet_id: "filler", run_id: `spread-${i}`, results: "", error: "x" }),
        ),
      );
    const counts = async () => Promise.all(ids.map(async (id) => (await runsOf(id)).total as number));
    // The two tests before kept 5 of filler's: 195 are left for it.
    // Each task's own current run is listed too.
    await until("the runs to be kept", async () => (await counts()).reduce((a, b) => a + b, 0) >= 198, 30_000);
    await Bun.sleep(500);
    expect(await counts()).toEqual([101, 96, 1]);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  }, 90_000);
});
