import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { backendFor, type FlRun, prepareFl } from "../../../src/proplet/fl.ts";

// The proplet's side of a round before the module runs: what it fetches, where the module finds it, and the
// backend it is told. A real HTTP server stands in for the manager's /fl routes.

const big = JSON.stringify({ w: Array.from({ length: 20_000 }, (_, i) => i / 7), b: [0] });
const seen: string[] = [];
const server = Bun.serve({
  port: 0,
  fetch(req) {
    const u = new URL(req.url);
    seen.push(`${u.pathname} ${req.headers.get("authorization")}`);
    if (u.pathname === "/fl/models/3") return new Response(big);
    if (u.pathname === "/fl/datasets/p1") return Response.json({ data: [{ x: [1], y: 0 }] });
    return Response.json({ error: "not found" }, { status: 404 });
  },
});
afterAll(() => server.stop(true));
const url = `http://127.0.0.1:${server.port}/fl`;
const ctx = { propletId: "p1", apiKey: "k", processEnv: {}, gatewayUrl: url };

describe("an FL round on the proplet", () => {
  test("the model and dataset become files in /fl, and env vars when small; the key is sent", async () => {
    const run = (await prepareFl(
      {
        ROUND_ID: "r1",
        MODEL_URI: "fl/models/global_model_v3",
        PROPELLER_FL_URL: url,
        HYPERPARAMS: '{"batch_size":4}',
      },
      ctx,
    )) as FlRun;
    expect(typeof run).toBe("object");
    expect(run.env).toMatchObject({ PROPLET_ID: "p1", MODEL_PATH: "/fl/model.json", DATASET_PATH: "/fl/dataset.json" });
    expect(run.env.MODEL_DATA === undefined).toBe(true); // 20,000 numbers (380 KB) do not go in an env var
    expect(run.env.DATASET_DATA).toBe('{"data":[{"x":[1],"y":0}]}');
    expect(run.env.ML_BACKEND).toBe("tinyml");
    expect(run.dir).toMatchObject({ guest: "/fl", readonly: true });
    expect(readFileSync(join(run.dir.host, "model.json"), "utf8")).toBe(big);
    expect(run.coordinator).toBe(url);
    expect(seen).toEqual(["/fl/models/3 Bearer k", "/fl/datasets/p1 Bearer k"]);
    run.cleanup();
    expect(existsSync(run.dir.host)).toBe(false);
  });

  test("the proplet's own env comes before the manager's hint; a missing dataset is not an error", async () => {
    const run = (await prepareFl(
      { ROUND_ID: "r1", PROPELLER_FL_URL: "http://unused.invalid/fl", PROPLET_ID: "p2" },
      { ...ctx, processEnv: { MANAGER_COORDINATOR_URL: url, DATA_STORE_URL: url } },
    )) as FlRun;
    expect(run.coordinator).toBe(url);
    expect(run.env.DATASET_PATH).toBeUndefined();
    expect(run.env.ML_BACKEND).toBe("standard");
    run.cleanup();
  });

  test("the key goes to the gateway or where the proplet's own env points, never where only a task says", async () => {
    seen.length = 0;
    const foreign = `http://localhost:${server.port}/fl`; // another host name than the broker's
    const run = (await prepareFl(
      { MODEL_URI: "fl/models/global_model_v3", MODEL_REGISTRY_URL: foreign },
      ctx,
    )) as FlRun;
    run.cleanup();
    expect(seen).toEqual(["/fl/models/3 null"]);
    seen.length = 0;
    const own = { ...ctx, processEnv: { MODEL_REGISTRY_URL: foreign } };
    ((await prepareFl({ MODEL_URI: "fl/models/global_model_v3" }, own)) as FlRun).cleanup();
    expect(seen).toEqual(["/fl/models/3 Bearer k"]);
  });

  test("the key goes to exact origins only: another port or scheme of a trusted host gets none", async () => {
    const other = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        seen.push(`other ${req.headers.get("authorization")}`);
        return new Response(big);
      },
    });
    try {
      seen.length = 0;
      const otherPort = `http://127.0.0.1:${other.port}/fl`;
      // The gateway is trusted at its own port; the proplet's own env names a URL on a third one.
      const own = { ...ctx, processEnv: { MODEL_REGISTRY_URL: `http://127.0.0.1:1/fl` } };
      (
        (await prepareFl({ MODEL_URI: "fl/models/global_model_v3", MODEL_REGISTRY_URL: otherPort }, own)) as FlRun
      ).cleanup();
      expect(seen).toEqual(["other null"]);
    } finally {
      other.stop(true);
    }
  });

  test("refusals name what is missing", async () => {
    expect(await prepareFl({ ROUND_ID: "r1" }, ctx)).toContain("MANAGER_COORDINATOR_URL is not");
    expect(await prepareFl({ MODEL_URI: "m/v1" }, ctx)).toContain("MODEL_REGISTRY_URL is not");
    expect(await prepareFl({ MODEL_URI: "global_model_v8", MODEL_REGISTRY_URL: url }, ctx)).toContain("model v8 from");
    expect(backendFor("not json")).toBe("standard");
    expect(backendFor('{"batch_size":8}')).toBe("tinyml");
  });
});
