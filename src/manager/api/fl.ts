import type { Hono } from "hono";
import { z } from "zod";
import { CborError, decodeCbor } from "../../core/cbor.ts";
import { invalid } from "../../core/errors.ts";
import { DatasetPost, ExperimentCreate, experimentTypo, FlUpdate, Id, ModelPost } from "../../core/fl-experiment.ts";
import type { Federation } from "../fl.ts";
import { propletOf } from "./auth.ts";
import { checked, jsonBody, query } from "./http.ts";

// Federated learning under `/fl`, at upstream's paths (model registry, data store, coordinator), so one URL,
// `http://host:7070/fl`, serves as MODEL_REGISTRY_URL, DATA_STORE_URL and COORDINATOR_URL. A round's task may
// call the routes it needs with its proplet's API key (see auth.ts); an update then counts only as that proplet's.

/** Digits only (`0x10`, `1e3` and ` 1` are not versions), a safe integer. */
const Version = z
  .string()
  .regex(/^\d{1,15}$/, "Invalid version")
  .transform((v) => Number(v));
const CBOR_TYPES = new Set(["application/cbor", "application/cbor-seq"]);

/** A dataset is keyed by its proplet's id: bounded, as every stored key is (LMDB refuses keys over ~2 KB). */
function datasetId(text: string): string {
  const r = Id.safeParse(text);
  if (!r.success) throw invalid(`proplet id: ${r.error.issues[0]?.message}`);
  return r.data;
}

export function flRoutes(app: Hono, fl: Federation): void {
  app.get("/fl/models", (c) => c.json({ versions: fl.registry.modelVersions() }));
  app.get("/fl/models/:version", (c) => {
    const v = Version.safeParse(c.req.param("version"));
    if (!v.success) throw invalid("Invalid version: give a whole number");
    return c.json(fl.registry.model(v.data));
  });
  app.post("/fl/models", async (c) => {
    const body = await jsonBody(c, ModelPost);
    return c.json(await fl.registry.putModel(body.version, body.model), 201);
  });

  app.get("/fl/datasets", (c) => c.json(fl.registry.datasets()));
  app.get("/fl/datasets/:id", (c) => c.json(fl.registry.dataset(datasetId(c.req.param("id")), propletOf(c))));
  app.post("/fl/datasets/:id", async (c) =>
    c.json(await fl.registry.putDataset(datasetId(c.req.param("id")), await jsonBody(c, DatasetPost)), 201),
  );

  app.post("/fl/experiments", async (c) =>
    c.json(await fl.configure(await jsonBody(c, ExperimentCreate, { typos: experimentTypo }))),
  );
  app.get("/fl/experiments", (c) => c.json({ experiments: fl.list() }));
  app.get("/fl/experiments/:id", (c) => c.json(fl.get(c.req.param("id"))));
  app.post("/fl/experiments/:id/stop", async (c) => c.json(await fl.stop(c.req.param("id"))));

  app.get("/fl/task", (c) => {
    const round = query(c, "round_id", z.string({ error: "round_id is required" }).min(1));
    return c.json(fl.task(round, c.req.query("proplet_id")));
  });
  app.post("/fl/update", async (c) => c.json(await fl.update(await jsonBody(c, FlUpdate), "http", propletOf(c))));
  app.post("/fl/update_cbor", async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (!CBOR_TYPES.has(type)) throw invalid("Content-Type must be application/cbor or application/cbor-seq");
    let data: unknown;
    try {
      data = decodeCbor(new Uint8Array(await c.req.arrayBuffer()));
    } catch (e) {
      if (e instanceof CborError || e instanceof TypeError) throw invalid(`body is not valid CBOR: ${e.message}`);
      throw e;
    }
    return c.json(await fl.update(checked(data, FlUpdate), "http", propletOf(c)));
  });
  app.get("/fl/rounds/:id/complete", (c) => c.json(fl.roundStatus(c.req.param("id"))));
}
