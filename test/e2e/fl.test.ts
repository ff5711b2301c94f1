import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { runMnist } from "../../scripts/examples/fl-mnist.ts";
import { startFlSite, stopFlSite } from "../fl-site.ts";
import { b64, type Proc, runTask, type Serve } from "../helpers.ts";

// Federated learning end to end: the MNIST example's rounds, and an FL task whose proplet knows no coordinator or
// registry (real serve, a real proplet: test/fl-site.ts). Rounds, updates, refusals, the MQTT fallback, a proplet
// killed mid-round, the CLI, upstream's Go client and a restart are fl-rounds.test.ts.

describe("the MNIST example", () => {
  test("three proplets train softmax regression on real digits: held-out accuracy rises round by round", async () => {
    const r = await runMnist({
      rounds: 3,
      iid: true,
      perClient: 400,
      epochs: 2,
      lr: 0.1,
      batchSize: 16,
      log: () => {},
    });
    expect(r.rounds).toBe(3);
    expect(r.accuracy_per_round[2]!).toBeGreaterThan(r.accuracy_per_round[0]!);
    expect(r.final_accuracy).toBeGreaterThan(0.8);
  }, 60_000);
});

describe("rounds, updates and refusals", () => {
  let s: Serve;
  const procs: Proc[] = [];

  beforeAll(async () => {
    s = await startFlSite(procs, {}, ["alpha"]);
  });
  afterAll(() => stopFlSite(s, procs));

  test("an FL task whose proplet knows no coordinator or registry fails with the reason, before it runs", async () => {
    const noCoordinator = await runTask(s.url, {
      name: "fl-manual",
      file: b64("spin"),
      proplet_id: "alpha",
      env: { ROUND_ID: "r" },
    });
    expect(noCoordinator.state).toBe(4);
    expect(noCoordinator.error).toContain("ROUND_ID is set but MANAGER_COORDINATOR_URL is not");
    const noRegistry = await runTask(s.url, {
      name: "fl-manual",
      file: b64("spin"),
      proplet_id: "alpha",
      env: { MODEL_URI: "fl/models/global_model_v1" },
    });
    expect(noRegistry.error).toContain("MODEL_URI is set but MODEL_REGISTRY_URL is not");
    const unknownModel = await runTask(s.url, {
      name: "fl-manual",
      file: b64("spin"),
      proplet_id: "alpha",
      env: { MODEL_URI: "fl/models/global_model_v99", MODEL_REGISTRY_URL: `${s.url}/fl` },
    });
    expect(unknownModel.error).toContain("model v99 from");
    expect(unknownModel.error).toContain("HTTP 404");
  }, 30_000);
});
