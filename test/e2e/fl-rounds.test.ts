import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { cbor } from "../cbor.ts";
import { flClient, startFlSite, stopFlSite, update } from "../fl-site.ts";
import {
  b64,
  cli,
  FIXTURES,
  http,
  type Proc,
  ROOT,
  type Serve,
  spawnPropeller,
  startServe,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// Federated learning end to end: real serve (authentication on), real proplets, real rounds (test/fl-site.ts). The
// numbers FedAvg must give, who may send an update and when, the MQTT fallback, a proplet killed in the middle of a
// round, the CLI, upstream's Go client, and a restart. One story: each round's model is the next one's start and the
// last test counts every experiment and model version before it. The MNIST example and an FL task without a
// coordinator are fl.test.ts.

describe("rounds, updates and refusals", () => {
  let s: Serve;
  const procs: Proc[] = [];
  const keys: Record<string, string> = {};
  const { as, post, configure } = flClient(() => s, keys);

  beforeAll(async () => {
    s = await startFlSite(procs, keys);
  });
  afterAll(() => stopFlSite(s, procs));

  test("FedAvg of (w=[1,1,1], b=1, n=10) and (w=[3,3,3], b=3, n=30) is model v1 w=[2.5,2.5,2.5], b=2.5; refusals on the way", async () => {
    const { round_id: round, model_version } = await configure("numbers", ["alpha", "beta"], { round_id: "num-1" });
    expect(model_version).toBe(0);
    // Each participant's task is launched on it, with upstream's env.
    const exp = (await http(`${s.url}/fl/experiments/numbers`)).body;
    const taskIds = Object.values(exp.round_list[0].tasks) as string[];
    expect(taskIds).toHaveLength(2);
    const t = (await http(`${s.url}/tasks/${taskIds[0]}`)).body;
    expect(t.name).toMatch(/^fl-round-num-1-(alpha|beta)$/);
    expect(t.env).toMatchObject({ ROUND_ID: "num-1", MODEL_URI: "fl/models/global_model_v0", HYPERPARAMS: "{}" });

    expect((await post("/fl/update", "alpha", update(round, "alpha", 1, 10))).status).toBe(200);
    // Refused: a second update, another proplet's name, a non-participant, a wrong shape, an unknown round.
    const again = await post("/fl/update", "alpha", update(round, "alpha", 1, 10));
    expect(again).toEqual({ status: 409, body: { error: "proplet alpha already sent its update for round num-1" } });
    const spoof = await post("/fl/update", "alpha", update(round, "beta", 9, 10));
    expect(spoof).toEqual({ status: 403, body: { error: "proplet alpha may not send an update for proplet beta" } });
    // The same sent chunked (no Content-Length): the body limit put another Request in the context before the route
    // ran, and the identity kept by the first was lost there: the update counted as beta's.
    const chunked = await fetch(`${s.url}/fl/update`, {
      method: "POST",
      headers: { ...as("alpha"), "content-type": "application/json" },
      body: new ReadableStream({
        start(ctl) {
          ctl.enqueue(new TextEncoder().encode(JSON.stringify(update(round, "beta", 9, 10))));
          ctl.close();
        },
      }),
    });
    expect(chunked.status).toBe(403);
    const outsider = await post("/fl/update", "gamma", update(round, "gamma", 9, 10));
    expect(outsider).toEqual({ status: 403, body: { error: "proplet gamma is not a participant of round num-1" } });
    // Metrics are a few figures: a participant's 1 MiB of them is refused, not kept with the round for every reader.
    const fat = await post("/fl/update", "beta", {
      ...update(round, "beta", 3, 30),
      metrics: { junk: "A".repeat(1 << 20) },
    });
    expect(fat).toEqual({ status: 400, body: { error: "metrics: at most 16384 characters as JSON" } });
    const shape = await post("/fl/update", "beta", { ...update(round, "beta", 3, 30), update: { w: [3, 3], b: 3 } });
    expect(shape).toEqual({ status: 400, body: { error: "update: tensor w has 2 elements, the model has 3" } });
    const nan = await post("/fl/update", "beta", { ...update(round, "beta", 3, 30), update: { w: [3, "x", 3], b: 3 } });
    expect(nan.status).toBe(400);
    expect((await post("/fl/update", "beta", update("no-such", "beta", 3, 30))).status).toBe(404);
    // A proplet's key opens only a round task's routes.
    const tasks = await fetch(`${s.url}/tasks`, { headers: as("beta") });
    expect(tasks.status).toBe(403);
    const other = await fetch(`${s.url}/fl/datasets/alpha`, { headers: as("beta") });
    expect(other.status).toBe(403);
    // A dataset's key is bounded: an id no proplet can have is refused before anything is stored.
    const long = await http(`${s.url}/fl/datasets/${"x".repeat(3000)}`, "POST", { data: [] });
    expect(long.status).toBe(400);
    expect(long.body.error).toContain("proplet id: 1 to 128 letters");

    // The second update as CBOR completes the round (K-of-N = both participants).
    const res = await fetch(`${s.url}/fl/update_cbor`, {
      method: "POST",
      headers: { ...as("beta"), "content-type": "application/cbor" },
      body: cbor(update(round, "beta", 3, 30)),
    });
    expect(res.status).toBe(200);
    const status = await until("the round to complete", async () => {
      const r = (await http(`${s.url}/fl/rounds/${round}/complete`)).body.status;
      return r.completed && r;
    });
    expect(status).toMatchObject({ round_id: "num-1", completed: true, num_updates: 2, k_of_n: 2, model_version: 1 });
    expect((await http(`${s.url}/fl/models/1`)).body).toEqual({ w: [2.5, 2.5, 2.5], b: 2.5 });
    const done = (await http(`${s.url}/fl/experiments/numbers`)).body;
    expect(done.state).toBe("completed");
    expect(done.round_list[0].metrics).toEqual({ loss: 2.5 });
    // Late: the round is closed; its spinning tasks were stopped.
    const late = await post("/fl/update", "alpha", update(round, "alpha", 5, 10));
    expect(late).toEqual({
      status: 409,
      body: { error: "round num-1 is closed (completed): late update from alpha refused" },
    });
    for (const id of taskIds) {
      await until(`task ${id} to end`, async () => (await http(`${s.url}/tasks/${id}`)).body.state >= 3);
    }
    const bad = await fetch(`${s.url}/fl/update_cbor`, {
      method: "POST",
      headers: { ...as("beta"), "content-type": "application/cbor" },
      body: Uint8Array.from([0x82, 1]),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error).toContain("not valid CBOR");
  }, 30_000);

  test("an update on the MQTT fallback counts for the proplet the topic names, and only that proplet may publish there", async () => {
    const { round_id: round } = await configure("fallback", ["alpha", "beta"], {
      round_id: "fb-1",
      model_ref: "fl/models/global_model_v1",
    });
    const connect = (id: string) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
        clientId: `${id}-test`,
        username: id,
        password: keys[id]!,
        reconnectPeriod: 0,
      });
    // gamma publishing as beta is refused by the broker (the connection is closed) and counts for nothing.
    const gamma = await connect("gamma");
    const closed = new Promise<void>((r) => gamma.on("close", () => r()));
    gamma.publish(`fl/rounds/${round}/updates/beta`, JSON.stringify(update(round, "beta", 100, 10)), { qos: 1 });
    await closed;
    gamma.end(true);
    const beta = await connect("beta");
    await beta.publishAsync(`fl/rounds/${round}/updates/beta`, JSON.stringify(update(round, "beta", 4, 10)), {
      qos: 1,
    });
    await beta.endAsync();
    await until(
      "beta's update to count",
      async () => (await http(`${s.url}/fl/rounds/${round}/complete`)).body.status.num_updates === 1,
    );
    expect((await post("/fl/update", "alpha", update(round, "alpha", 2, 10))).status).toBe(200);
    const status = await until("the round to complete", async () => {
      const r = (await http(`${s.url}/fl/rounds/${round}/complete`)).body.status;
      return r.completed && r;
    });
    expect(status.model_version).toBe(2);
    expect((await http(`${s.url}/fl/models/2`)).body).toEqual({ w: [3, 3, 3], b: 3 });
    const via = (await http(`${s.url}/fl/experiments/fallback`)).body.round_list[0].updates.map((u: any) => u.via);
    expect(via.sort()).toEqual(["http", "mqtt"]);
  }, 30_000);

  test("a proplet killed in the middle of a round: the round finishes with the others", async () => {
    // min_participants 2 of 3: gamma's task dies with it, the round completes from alpha's and beta's updates.
    const { round_id: round } = await configure("killed", ["alpha", "beta", "gamma"], {
      round_id: "kill-1",
      model_ref: "fl/models/global_model_v2",
      min_participants: 2,
      timeout_s: 20,
    });
    await procs[2]!.kill("SIGKILL");
    expect((await post("/fl/update", "alpha", update(round, "alpha", 1, 1))).status).toBe(200);
    expect((await post("/fl/update", "beta", update(round, "beta", 2, 1))).status).toBe(200);
    const status = await until(
      "the round to complete without gamma",
      async () => {
        const r = (await http(`${s.url}/fl/rounds/${round}/complete`)).body.status;
        return r.completed && r;
      },
      25_000,
      100,
    );
    expect(status).toMatchObject({ state: "completed", num_updates: 2, k_of_n: 3, model_version: 3 });
    expect((await http(`${s.url}/fl/models/3`)).body).toEqual({ w: [1.5, 1.5, 1.5], b: 1.5 });
    const e = (await http(`${s.url}/fl/experiments/killed`)).body;
    const gammaTask = (await http(`${s.url}/tasks/${e.round_list[0].tasks.gamma}`)).body;
    expect(gammaTask.state).toBe(4); // Failed: its proplet was lost
  }, 40_000);

  test("the CLI: configure --wait prints a line per round; update, round-status, status and models as upstream's and ours", async () => {
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const waiting = spawnPropeller(
      [
        ...["fl", "configure", "--experiment-id", "cli", "--round-id", "cli", "--participants", "alpha,beta"],
        ...["--task-file", join(FIXTURES, "spin.wasm"), "--rounds", "2", "--model-ref", "fl/models/global_model_v3"],
        ...["--hyperparams", '{"lr":0.1}', "--wait"],
      ],
      env,
    );
    for (const [i, round] of ["cli-1", "cli-2"].entries()) {
      await until(
        `round ${round} to start`,
        async () => (await http(`${s.url}/fl/rounds/${round}/complete`)).status === 200,
      );
      const sent = cli(
        [
          "fl",
          "update",
          "--round-id",
          round,
          "--proplet-id",
          "alpha",
          "--num-samples",
          "10",
          "--update",
          `{"w":[${i},${i},${i}],"b":${i}}`,
        ],
        env,
      );
      expect(sent).toMatchObject({ code: 0, stdout: "ok\n" });
      expect((await post("/fl/update", "beta", update(round, "beta", i, 10))).status).toBe(200);
    }
    expect(await waiting.proc.exited).toBe(0);
    expect(waiting.output()).toMatch(/cli round 1\/2 \(cli-1\) completed 2\/2 updates → model v4 loss=0/);
    expect(waiting.output()).toMatch(/cli round 2\/2 \(cli-2\) completed 2\/2 updates → model v5 loss=1/);
    const st = JSON.parse(cli(["fl", "round-status", "cli-2"], env).stdout);
    expect(st).toMatchObject({ round_id: "cli-2", completed: true, num_updates: 2, model_version: 5 });
    expect(cli(["fl", "status", "cli"], env).stdout).toContain("cli: completed, fedavg");
    expect(cli(["fl", "models"], env).stdout).toBe("v0 v1 v2 v3 v4 v5\n");
    expect(JSON.parse(cli(["fl", "models", "5"], env).stdout)).toEqual({ w: [1, 1, 1], b: 1 });
    // As the listing names them (it said to give a --version flag that does not exist).
    expect(JSON.parse(cli(["fl", "models", "v5"], env).stdout)).toEqual({ w: [1, 1, 1], b: 1 });
    const task = JSON.parse(cli(["fl", "task", "--round-id", "cli-2", "--proplet-id", "alpha"], env).stdout);
    expect(task).toEqual({
      round_id: "cli-2",
      model_ref: "fl/models/global_model_v4",
      config: { proplet_id: "alpha" },
      hyperparams: { lr: 0.1 },
    });
    const missing = cli(["fl", "configure"], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("fl configure needs --experiment-id ID");
    // A configure the manager refuses, with --wait: said, and the CLI exits (it waited on its open stream for ever).
    const t0 = Date.now();
    const refused = cli(
      ["fl", "configure", "--experiment-id", "nobody", "--participants", "nobody-here", "--task-file"].concat([
        join(FIXTURES, "spin.wasm"),
        "--wait",
      ]),
      env,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("participants: no proplet nobody-here");
    expect(Date.now() - t0).toBeLessThan(10_000);
    const late = cli(
      ["fl", "update", "--round-id", "cli-1", "--proplet-id", "alpha", "--update", '{"w":[1,1,1],"b":1}'],
      env,
    );
    expect(late.code).not.toBe(0);
    expect(late.stderr).toContain("round cli-1 is closed (completed)");
  }, 40_000);

  test("upstream's Go FL client runs unchanged as the round's module; its result is upstream's FL envelope", async () => {
    const client = readFileSync(join(ROOT, "test", "fixtures", "upstream", "fl-client.wasm")).toString("base64");
    const samples = (k: number) =>
      Array.from({ length: 32 }, (_, i) => ({ x: [((i * k) % 10) / 10, (i % 3) / 3, 0.5], y: i % 2 }));
    for (const [i, id] of ["alpha", "beta"].entries()) {
      expect((await http(`${s.url}/fl/datasets/${id}`, "POST", { data: samples(i + 1) })).status).toBe(201);
    }
    const r = await http(`${s.url}/fl/experiments`, "POST", {
      experiment_id: "upstream",
      round_id: "up-1",
      participants: ["alpha", "beta"],
      model_ref: "fl/models/global_model_v5",
      hyperparams: { epochs: 1, lr: 0.01, batch_size: 16 },
      k_of_n: 2,
      timeout_s: 30,
      task_file: client,
    });
    expect(r.status).toBe(200);
    const status = await until(
      "the Go clients' round to complete",
      async () => {
        const st = (await http(`${s.url}/fl/rounds/up-1/complete`)).body.status;
        return st.completed && st;
      },
      25_000,
      100,
    );
    expect(status).toMatchObject({ state: "completed", num_updates: 2, model_version: 6 });
    // Trained from v5 (w=[1,1,1], b=1): moved, and the client's pass-through keys are not tensors.
    const model = (await http(`${s.url}/fl/models/6`)).body;
    expect(Object.keys(model).sort()).toEqual(["b", "w"]);
    expect(model.w).toHaveLength(3);
    expect(model.w).not.toEqual([1, 1, 1]);
    const e = (await http(`${s.url}/fl/experiments/upstream`)).body;
    expect(e.round_list[0].updates.map((u: any) => u.num_samples)).toEqual([32, 32]);
    const task = (await http(`${s.url}/tasks/${e.round_list[0].tasks.alpha}`)).body;
    expect(task.state).toBe(3);
    const envelope = task.results;
    expect(envelope).toMatchObject({
      task_id: task.id,
      round_id: "up-1",
      proplet_id: "alpha",
      num_samples: 32,
      format: "f32-delta",
    });
    const stdout = JSON.parse(Buffer.from(envelope.update_b64, "base64").toString());
    expect(stdout).toMatchObject({
      round_id: "up-1",
      proplet_id: "alpha",
      base_model_uri: "fl/models/global_model_v5",
    });
  }, 40_000);

  test("a round that cannot gather min_participants fails and says why; rounds, experiments and models survive kill -9", async () => {
    // gamma is gone: with min_participants 3 the round fails at once.
    const r = await http(`${s.url}/fl/experiments`, "POST", {
      experiment_id: "short",
      participants: ["alpha", "beta", "gamma"],
      task_file: b64("spin"),
      min_participants: 3,
      model_ref: "fl/models/global_model_v3",
    });
    expect(r.status).toBe(200);
    const e = (await http(`${s.url}/fl/experiments/short`)).body;
    expect(e.state).toBe("failed");
    const gammaName = (await http(`${s.url}/proplets/gamma`)).body.name;
    expect(e.error).toBe(
      `round short-r1: only 2 of 3 participants are alive (not: ${gammaName}); min_participants is 3`,
    );
    // Bad input named: an unknown proplet, a model not in the registry, k_of_n over the participants.
    const bad = async (body: object) =>
      (
        await http(`${s.url}/fl/experiments`, "POST", {
          experiment_id: "x",
          participants: ["alpha"],
          task_file: b64("spin"),
          ...body,
        })
      ).body.error;
    expect(await bad({ participants: ["nobody"] })).toContain("participants: no proplet nobody");
    expect(await bad({ model_ref: "fl/models/global_model_v99" })).toBe(
      "model_ref: model version 99 is not in the registry",
    );
    expect(await bad({ k_of_n: 2 })).toBe("k_of_n: 2 is more than the 1 participant(s)");
    expect(await bad({ task_file: undefined })).toContain("task_wasm_image");

    // kill -9 in the middle of a round: the update acknowledged before counts after the restart, and the next round
    // starts with the experiment's module (stored apart from the experiment).
    const { round_id: round } = await configure("crash", ["alpha", "beta"], {
      round_id: "crash",
      rounds: 2,
      model_ref: "fl/models/global_model_v1",
    });
    expect(round).toBe("crash-1");
    expect((await post("/fl/update", "alpha", update(round, "alpha", 1, 10))).status).toBe(200);
    await s.kill("SIGKILL");
    // Where the proplets are still looking for it.
    s = await startServe({
      dataDir: s.dataDir,
      extra: ["--no-local-proplet"],
      ports: { http: s.httpPort, mqtt: s.mqttPort },
    });
    expect((await http(`${s.url}/fl/rounds/${round}/complete`)).body.status).toMatchObject({
      completed: false,
      num_updates: 1,
    });
    for (const id of ["alpha", "beta"]) await untilAlive(s.url, id, 15_000);
    expect((await post("/fl/update", "beta", update(round, "beta", 3, 30))).status).toBe(200);
    const after = await until("the round to complete after the restart", async () => {
      const r = (await http(`${s.url}/fl/rounds/${round}/complete`)).body.status;
      return r.completed && r;
    });
    expect(after).toMatchObject({ num_updates: 2, model_version: 7 });
    expect((await http(`${s.url}/fl/models/7`)).body).toEqual({ w: [2.5, 2.5, 2.5], b: 2.5 });
    const second = await until("round 2 to start", async () => {
      const e = (await http(`${s.url}/fl/experiments/crash`)).body;
      return e.round_list[1];
    });
    expect(second.round_id).toBe("crash-2");
    for (const id of Object.values(second.tasks) as string[]) {
      expect((await http(`${s.url}/tasks/${id}`)).body.file).toBeTruthy(); // the module came back from storage
    }
    for (const who of ["alpha", "beta"])
      expect((await post("/fl/update", who, update("crash-2", who, 4, 10))).status).toBe(200);
    await until(
      "round 2 to complete",
      async () => (await http(`${s.url}/fl/rounds/crash-2/complete`)).body.status.completed,
    );

    await s.kill("SIGKILL");
    s = await startServe({ dataDir: s.dataDir, extra: ["--no-local-proplet"] });
    expect((await http(`${s.url}/fl/models`)).body).toEqual({ versions: [0, 1, 2, 3, 4, 5, 6, 7, 8] });
    expect((await http(`${s.url}/fl/models/1`)).body).toEqual({ w: [2.5, 2.5, 2.5], b: 2.5 });
    const ids = (await http(`${s.url}/fl/experiments`)).body.experiments.map(
      (x: any) => `${x.experiment_id}:${x.state}`,
    );
    expect(ids.sort()).toEqual([
      "cli:completed",
      "crash:completed",
      "fallback:completed",
      "killed:completed",
      "numbers:completed",
      "short:failed",
      "upstream:completed",
    ]);
    expect(tokenOf(s.url)).not.toBe("");
    // The proplets lost their broker (the restarted serve listens elsewhere): SIGTERM still ends them at once.
    const t0 = Date.now();
    await procs[0]!.kill();
    expect(procs[0]!.output()).toContain("lost the MQTT broker");
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(procs[0]!.proc.exitCode).toBe(0);
  }, 40_000);
});

describe("a restart after a round's deadline; what an operator names", () => {
  let s: Serve;
  const procs: Proc[] = [];
  const keys: Record<string, string> = {};
  const { post, configure } = flClient(() => s, keys);

  beforeAll(async () => {
    s = await startFlSite(procs, keys, ["delta", "epsilon"]);
  });
  afterAll(() => stopFlSite(s, procs));

  test("a round overdue when serve comes back closes, and the next waits for its participants to be heard again", async () => {
    const { round_id: round } = await configure("overdue", ["delta", "epsilon"], {
      round_id: "od",
      rounds: 2,
      timeout_s: 3,
      min_participants: 1,
    });
    expect(round).toBe("od-1");
    expect((await post("/fl/update", "delta", update(round, "delta", 1, 10))).status).toBe(200);
    await s.kill("SIGKILL");
    await Bun.sleep(3500); // past the round's deadline while serve is down
    s = await startServe({
      dataDir: s.dataDir,
      extra: ["--no-local-proplet", "--liveliness-threshold", "3", "--partition-grace", "0"],
      ports: { http: s.httpPort, mqtt: s.mqttPort },
    });
    // Launched once its log line says so: the round is listed while its tasks are still being made, one by one.
    await until("round 2 to be launched", () => s.output().includes("round od-2 (2/2) launched on"), 15_000);
    const second = (await http(`${s.url}/fl/experiments/overdue`)).body.round_list[1];
    // It failed at once with "only 0 of 2 participants are alive" while they were reconnecting.
    const e = (await http(`${s.url}/fl/experiments/overdue`)).body;
    expect({ state: e.state, error: e.error, round: second.state }).toEqual({
      state: "running",
      error: undefined,
      round: "running",
    });
    expect(Object.keys(second.tasks).sort()).toEqual(["delta", "epsilon"]);
    // The first round's task that sent nothing never says a user stopped it: stopped by its round's close, it says
    // so; the restart may have settled it first (its run lost with serve), which says that instead.
    const left = (await http(`${s.url}/tasks/${e.round_list[0].tasks.epsilon}`)).body;
    expect(left.error).not.toContain("stopped by user");
    if (left.status === "Interrupted") expect(left.error).toStartWith("round od-1 ended completed");
  }, 40_000);

  test("a dataset by the proplet's name is the one its rounds read; a model version is written once; model_ref names a version", async () => {
    const name = (await http(`${s.url}/proplets/delta`)).body.name as string;
    const stored = await http(`${s.url}/fl/datasets/${name}`, "POST", { data: [{ x: [1], y: 0 }] });
    expect(stored).toMatchObject({ status: 201, body: { proplet_id: "delta", size: 1 } });
    // The proplet asks by its id, and by its name too.
    for (const key of ["delta", name]) {
      const r = await fetch(`${s.url}/fl/datasets/${key}`, { headers: { authorization: `Bearer ${keys.delta}` } });
      expect({ key, status: r.status }).toEqual({ key, status: 200 });
    }
    const other = await fetch(`${s.url}/fl/datasets/${name}`, { headers: { authorization: `Bearer ${keys.epsilon}` } });
    expect(other.status).toBe(403);
    // A proplet identity that has not connected yet: its name is its id's too.
    const fresh = await http<{ id: string }>(`${s.url}/entities`, "POST", { kind: "proplet", name: "not-yet-here" });
    expect(fresh.status).toBe(201);
    const early = await http(`${s.url}/fl/datasets/not-yet-here`, "POST", { data: [{ x: [1], y: 1 }] });
    expect(early).toMatchObject({ status: 201, body: { proplet_id: fresh.body.id } });

    const versions = (await http(`${s.url}/fl/models`)).body.versions as number[];
    const last = versions.at(-1)!;
    const before = (await http(`${s.url}/fl/models/${last}`)).body;
    const over = await http(`${s.url}/fl/models`, "POST", { version: last, model: { w: [9, 9, 9], b: 9 } });
    expect(over.status).toBe(409);
    expect(over.body.error).toBe(
      `version: model version ${last} is stored already; a version is written once (next free: ${last + 1})`,
    );
    expect((await http(`${s.url}/fl/models/${last}`)).body).toEqual(before);
    // The same model again is no change.
    expect((await http(`${s.url}/fl/models`, "POST", { version: last, model: before })).status).toBe(201);

    const ref = await http(`${s.url}/fl/experiments`, "POST", {
      experiment_id: "ref",
      participants: ["delta"],
      task_file: b64("spin"),
      model_ref: "http://evil.example/x",
    });
    expect(ref.status).toBe(400);
    expect(ref.body.error).toContain("model_ref names no model version");
  });

  test("a round whose updates trained on no sample fails saying so (it was completed with loss 0, a model made of nothing)", async () => {
    expect((await configure("nodata", ["delta"], { k_of_n: 1, min_participants: 1 })).round_id).toBe("nodata-r1");
    expect((await post("/fl/update", "delta", update("nodata-r1", "delta", 1, 0))).status).toBe(200);
    const e = await until("the round to end", async () => {
      const x = (await http(`${s.url}/fl/experiments/nodata`)).body;
      return x.state !== "running" && x;
    });
    expect({ state: e.state, round: e.round_list[0].state, error: e.round_list[0].error }).toEqual({
      state: "failed",
      round: "failed",
      error:
        "no participant trained on any sample (every update has num_samples 0): store each one's data first (propeller fl datasets NAME --upload FILE)",
    });
  });

  test("an ended experiment's id configured again continues it: its rounds go on after the ones it has", async () => {
    const once = { k_of_n: 1, min_participants: 1 };
    expect((await configure("again", ["delta"], once)).round_id).toBe("again-r1");
    expect((await post("/fl/update", "delta", update("again-r1", "delta", 1, 10))).status).toBe(200);
    await until(
      "the first round to end",
      async () => (await http(`${s.url}/fl/experiments/again`)).body.state !== "running",
    );
    expect((await configure("again", ["delta"], once)).round_id).toBe("again-r2");
    const e = (await http(`${s.url}/fl/experiments/again`)).body;
    expect(e.round_list.map((r: any) => `${r.round_id}:${r.state}`)).toEqual([
      "again-r1:completed",
      "again-r2:running",
    ]);
    // While it runs, configuring it again is refused, naming the round it is in.
    const busy = await http(`${s.url}/fl/experiments`, "POST", {
      experiment_id: "again",
      participants: ["delta"],
      task_file: b64("spin"),
    });
    expect(busy).toEqual({ status: 409, body: { error: "experiment again is running (round again-r2)" } });
    expect((await http(`${s.url}/fl/experiments/again/stop`, "POST")).status).toBe(200);
  });
});
