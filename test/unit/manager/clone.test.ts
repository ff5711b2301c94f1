import { afterEach, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { createApp } from "../../../src/manager/api/app.ts";
import { b64 } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// Issue 28's console needs: a task copied with edits (`POST /tasks/{id}/clone`, "clone" and "re-run with edits")
// and a workflow's given name, stored and shown; in-process through the REST app on the real rooms.

let h: Harness;
let app: Hono;
afterEach(() => h?.close());

function setup(): void {
  h = harness();
  app = createApp(h.m, { version: "test", instanceId: "i-1" });
}

async function call(method: string, path: string, body?: unknown) {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const res = await app.request(path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, location: res.headers.get("location") };
}

describe("POST /tasks/{id}/clone", () => {
  test("a copy keeps the module and every field not changed; the changed ones are the patch's", async () => {
    setup();
    h.proplet("p1");
    const made = await call("POST", "/tasks", {
      name: "add",
      file: b64("add"),
      inputs: [1, 2],
      env: { A: "1" },
      timeout_s: 30,
      max_retries: 2,
      requirements: { labels: { gpu: "true" } },
      metadata: { team: "edge" },
      schedule: "*/5 * * * *",
      timezone: "Europe/Paris",
      misfire_policy: "run_once",
    });
    expect(made.status).toBe(201);
    const copy = await call("POST", `/tasks/${made.body.id}/clone`, { inputs: [5, 6], max_retries: 0 });
    // What an edit empties is gone from the copy, not stored empty.
    const emptied = await call("POST", `/tasks/${made.body.id}/clone`, {
      env: {},
      metadata: {},
      requirements: {},
      schedule: "",
      timezone: "",
      unset: ["timeout_s"],
    });
    expect(emptied.status).toBe(201);
    for (const k of ["env", "metadata", "requirements", "schedule", "timezone", "timeout_s"])
      expect(emptied.body[k]).toBeUndefined();
    expect(emptied.body).toMatchObject({ inputs: ["1", "2"], max_retries: 2 });
    // Its cron settings went with its schedule.
    expect(emptied.body.misfire_policy).toBeUndefined();
    const bad = await call("POST", `/tasks/${made.body.id}/clone`, { unset: ["state"] });
    expect(bad).toMatchObject({ status: 400, body: { error: expect.stringContaining("unset.0:") } });
    expect(copy.status).toBe(201);
    expect(copy.location).toBe(`/tasks/${copy.body.id}`);
    expect(copy.body.id).not.toBe(made.body.id);
    expect(copy.body).toMatchObject({
      name: "add",
      state: 0,
      inputs: ["5", "6"],
      env: { A: "1" },
      timeout_s: 30,
      max_retries: 0,
      requirements: { labels: { gpu: "true" } },
      metadata: { team: "edge" },
      schedule: "*/5 * * * *",
      timezone: "Europe/Paris",
      misfire_policy: "run_once",
    });
    // The module came along (the view shows it redacted as the original's): the copy runs.
    expect(copy.body.file).toBe(made.body.file);
    const plain = await call("POST", "/tasks", { name: "add", file: b64("add"), inputs: [1, 2] });
    const again = await call("POST", `/tasks/${plain.body.id}/clone`, { inputs: [20, 22] });
    expect((await call("POST", `/tasks/${again.body.id}/start`)).status).toBe(200);
    h.result(again.body.id, "p1", "42");
    expect((await call("GET", `/tasks/${again.body.id}/results`)).body).toEqual({ results: "42" });
    // A new module replaces the old one.
    const other = await call("POST", `/tasks/${plain.body.id}/clone`, { image_url: "registry.local/add:2" });
    expect(other.body).toMatchObject({ image_url: "registry.local/add:2" });
    expect(other.body.file).toBeUndefined();
    // An emptied file leaves only itself out: a task with an image and a file keeps its image (it lost both).
    const both = await call("POST", "/tasks", { name: "add", file: b64("add"), image_url: "registry.local/add:1" });
    const imageOnly = await call("POST", `/tasks/${both.body.id}/clone`, { file: "" });
    expect(imageOnly.status).toBe(201);
    expect(imageOnly.body).toMatchObject({ image_url: "registry.local/add:1" });
    expect(imageOnly.body.file).toBeUndefined();
  });

  test("a copy of a workflow's task stands alone; bad edits name their field; an unknown task is 404", async () => {
    setup();
    const wf = await call("POST", "/workflows", {
      name: "etl",
      tasks: [
        { id: "a", name: "add", file: b64("add") },
        { id: "b", name: "add", file: b64("add"), depends_on: ["a"], run_if: "success" },
      ],
    });
    expect(wf.status).toBe(201);
    const copy = await call("POST", "/tasks/b/clone", {});
    expect(copy.status).toBe(201);
    for (const k of ["workflow_id", "workflow_name", "depends_on", "job_id"]) expect(copy.body[k]).toBeUndefined();
    expect((await call("POST", "/tasks/b/clone", { priority: 101 })).body.error).toContain("priority:");
    expect((await call("POST", "/tasks/b/clone", { name: "" })).body.error).toContain("name:");
    expect((await call("POST", "/tasks/b/clone", { schedule: "not cron" })).status).toBe(400);
    expect((await call("POST", "/tasks/nope-nope/clone", {})).status).toBe(404);
  });
});

describe("a workflow's name", () => {
  test("is stored on its tasks and shown by GET /workflows and /workflows/{id}; a fresh copy keeps it", async () => {
    setup();
    const body = { name: "nightly etl", tasks: [{ id: "x", name: "add", file: b64("add") }] };
    const wf = await call("POST", "/workflows", body);
    expect(wf.body).toMatchObject({ name: "nightly etl" });
    const fresh = await call("POST", "/workflows?fresh=true", body);
    expect(fresh.body).toMatchObject({ name: "nightly etl" });
    expect((await call("GET", `/workflows/${wf.body.workflow_id}`)).body.name).toBe("nightly etl");
    const list = await call("GET", "/workflows");
    expect(list.body.workflows.map((w: { name?: string }) => w.name)).toEqual(["nightly etl", "nightly etl"]);
    expect((await call("GET", "/tasks/x")).body.workflow_name).toBe("nightly etl");
    // Unnamed: no name, as before.
    const unnamed = await call("POST", "/workflows", { tasks: [{ name: "add", file: b64("add") }] });
    expect(unnamed.body.name).toBeUndefined();
  });

  test("a name is one line of at most 200 characters, for a workflow as for a job; a client cannot set it on a task", async () => {
    setup();
    const t = [{ name: "add", file: b64("add") }];
    for (const path of ["/workflows", "/jobs"]) {
      const long = await call("POST", path, { name: "n".repeat(201), tasks: t });
      expect(long).toMatchObject({
        status: 400,
        body: { error: expect.stringContaining("name: must be at most 200") },
      });
      const lines = await call("POST", path, { name: "a\nb", tasks: t });
      expect(lines).toMatchObject({ status: 400, body: { error: expect.stringContaining("name: must be one line") } });
      expect((await call("POST", path, { name: "n".repeat(200), tasks: t })).status).toBe(201);
    }
    const own = await call("POST", "/tasks", { name: "add", file: b64("add"), workflow_name: "spoof" });
    expect(own.body.workflow_name).toBeUndefined();
  });
});
