import { afterEach, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { createApp } from "../../../src/manager/api/app.ts";
import { b64, fixture } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// The REST app in-process (hono's app.request): status codes and error texts a client sees, on the real rooms.

let h: Harness;
let app: Hono;
afterEach(() => h?.close());

function setup(): void {
  h = harness();
  app = createApp(h.m, { version: "test", instanceId: "i-1" });
}

async function call(method: string, path: string, body?: unknown, type = "application/json") {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof FormData ? body : JSON.stringify(body);
    if (!(body instanceof FormData)) init.headers = { "content-type": type };
  }
  const res = await app.request(path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe("REST app", () => {
  test("create, read, start, result, list: upstream keys and a redacted module", async () => {
    setup();
    h.proplet("p1");
    const created = await call("POST", "/tasks", { name: "add", inputs: [1, 2], file: b64("add") });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "add", state: 0, status: "Pending", inputs: ["1", "2"] });
    expect(created.body.file).toContain("<REDACTED>");
    const id = created.body.id;
    expect((await call("POST", `/tasks/${id}/start`)).body).toEqual({ started: true, state: 2, status: "Running" });
    h.result(id, "p1", "3");
    expect((await call("GET", `/tasks/${id}/results`)).body).toEqual({ results: "3" });
    const list = await call("GET", "/tasks?offset=0&limit=1");
    expect(list.body).toMatchObject({ offset: 0, limit: 1, total: 1 });
    expect(list.body.tasks[0].id).toBe(id);
    expect((await call("GET", `/tasks/${id}/runs`)).body.runs[0]).toMatchObject({ attempt: 1, results: "3" });
    expect((await call("GET", "/proplets")).body.proplets[0]).toMatchObject({ id: "p1", alive: true, task_count: 0 });
    expect((await call("GET", "/health")).body).toMatchObject({ status: "pass", instance_id: "i-1" });
  });

  test("a start while the manager shuts down is a 503 to retry, not a 409 (the fault harness met it)", async () => {
    setup();
    h.proplet("p1");
    const id = (await call("POST", "/tasks", { name: "add", inputs: [1, 2], file: b64("add") })).body.id;
    await h.m.shutdown();
    const res = await app.request(`/tasks/${id}/start`, { method: "POST" });
    expect(res.status).toBe(503);
    expect([res.headers.get("retry-after"), res.headers.get("propeller-not-acted")]).toEqual(["2", "true"]);
    expect(((await res.json()) as { error: string }).error).toBe("the manager is shutting down: try again");
    // Other errors say nothing of retrying.
    const missing = await app.request("/tasks/nope/start", { method: "POST" });
    expect([missing.status, missing.headers.get("propeller-not-acted")]).toEqual([404, null]);
  });

  test("bad input: the field is named, with 400", async () => {
    setup();
    const cases: [unknown, string][] = [
      [{}, "name: is required"],
      [{ name: "x", inputs: [{}] }, "inputs.0: expected string or number"],
      [{ name: "x", file: "bm90IHdhc20=" }, "file: is not a WebAssembly module"],
      [{ name: "x", priority: 101 }, "priority:"],
      [{ name: "x", schedule: "not cron" }, "schedule: invalid cron expression"],
      [{ name: "x", timezone: "Mars/Base" }, 'timezone: unknown time zone "Mars/Base"'],
    ];
    for (const [body, error] of cases) {
      const r = await call("POST", "/tasks", body);
      expect(r.status).toBe(400);
      expect(r.body.error).toContain(error);
    }
    expect((await call("POST", "/tasks", "{not json")).body.error).toContain("body is not valid JSON");
    expect((await call("POST", "/tasks", { name: "x" }, "text/plain")).body.error).toStartWith(
      "Content-Type must be application/json",
    );
    expect((await call("GET", "/tasks?limit=0")).status).toBe(400);
    expect((await call("GET", "/proplets?status=dead")).status).toBe(400);
    expect((await call("GET", "/events?types=task,bogus")).body.error).toContain("unknown event type bogus");
    const deep = `{"name":"x","metadata":${'{"a":'.repeat(5000)}1${"}".repeat(5000)}}`;
    expect(await call("POST", "/tasks", deep)).toEqual({
      status: 400,
      body: { error: "body nests deeper than 32 levels" },
    });
  });

  test("error kinds become statuses: 404 unknown, 409 conflict, 400 no module", async () => {
    setup();
    h.proplet("p1");
    expect(await call("GET", "/tasks/nope")).toEqual({ status: 404, body: { error: "task nope not found" } });
    expect((await call("GET", "/no/such/route")).status).toBe(404);
    const bare = (await call("POST", "/tasks", { name: "bare" })).body.id;
    expect((await call("POST", `/tasks/${bare}/start`)).status).toBe(400);
    const id = (await call("POST", "/tasks", { name: "add", file: b64("add") })).body.id;
    await call("POST", `/tasks/${id}/start`);
    const again = await call("POST", `/tasks/${id}/start`);
    expect(again).toEqual({ status: 409, body: { error: `task ${id} is already Running` } });
    expect((await call("DELETE", "/proplets/p1")).status).toBe(409);
    expect((await call("DELETE", "/proplets/ghost")).status).toBe(404);
  });

  test("a task can be named by its name when no other task has it; several are a conflict naming their ids", async () => {
    setup();
    h.proplet("p1");
    const first = (await call("POST", "/tasks", { name: "add", inputs: [1, 2], file: b64("add") })).body.id as string;
    await call("POST", "/tasks", { name: "add-more", file: b64("add") }); // a name containing it is not it
    expect((await call("GET", "/tasks/add")).body.id).toBe(first);
    expect((await call("POST", "/tasks/add/start")).body).toMatchObject({ started: true });
    h.result(first, "p1", "3");
    expect((await call("GET", "/tasks/add/results")).body).toEqual({ results: "3" });
    const second = (await call("POST", "/tasks", { name: "add", file: b64("add") })).body.id as string;
    const both = await call("GET", "/tasks/add");
    expect(both.status).toBe(409);
    expect(both.body.error).toBe(
      `2 tasks are named add (newest first: ${second}, ${first}): give one's id (a unique prefix of it is enough)`,
    );
    expect((await call("GET", "/tasks/ad")).status).toBe(404);
    expect((await call("GET", "/tasks/ADD")).status).toBe(404);
  });

  test("a name that is also a prefix of another task's id is a conflict, not that other task (DELETE hit it)", async () => {
    setup();
    const created = await call("POST", "/workflows", { tasks: [{ id: "cafe-0001", name: "other" }] });
    expect(created.status).toBe(201);
    const named = (await call("POST", "/tasks", { name: "cafe", file: b64("add") })).body.id as string;
    const del = await call("DELETE", "/tasks/cafe");
    expect(del.status).toBe(409);
    expect(del.body.error).toContain("cafe-0001");
    expect(del.body.error).toContain(named);
    expect((await call("GET", "/tasks/cafe-0001")).status).toBe(200);
    expect((await call("GET", `/tasks/${named}`)).status).toBe(200);
    expect((await call("GET", "/tasks/cafe-")).body.id).toBe("cafe-0001"); // a prefix no name has: as before
  });

  test("a conflict or miss echoes no control character of the name or ids (a terminal would obey it)", async () => {
    setup();
    const evil = "\u001b]0;owned\u0007\u001b[2J";
    await call("POST", "/workflows", {
      tasks: [
        { id: `${evil}-1`, name: evil },
        { id: `${evil}-2`, name: evil },
      ],
    });
    for (const path of [`/tasks/${encodeURIComponent(evil)}`, "/tasks/%1B%5B2Jnope"]) {
      const r = await call("GET", path);
      expect([404, 409]).toContain(r.status);
      expect(r.body.error).not.toMatch(/\p{Cc}/u);
      expect(r.body.error).toContain("\\u001b");
    }
  });

  test("a name two tasks have is a conflict however many other names contain it", async () => {
    setup();
    const old = await h.create({ name: "x" });
    for (let i = 0; i < 1000; i++) await h.create({ name: `x-${i}` });
    const newest = await h.create({ name: "x" });
    const r = await call("DELETE", "/tasks/x");
    expect(r.status).toBe(409);
    expect(r.body.error).toContain(old);
    expect(r.body.error).toContain(newest);
    expect((await call("GET", `/tasks/${newest}`)).status).toBe(200);
  }, 30_000);

  test("a task can be named by a unique prefix of its id; an ambiguous or too short one is refused", async () => {
    setup();
    const id = (await call("POST", "/tasks", { name: "add", file: b64("add") })).body.id as string;
    expect((await call("GET", `/tasks/${id.slice(0, 8)}`)).body.id).toBe(id);
    expect((await call("GET", `/tasks/${id.slice(0, 3)}`)).status).toBe(404);
    const created = await call("POST", "/workflows", {
      tasks: [
        { id: "dup-task-1", name: "a" },
        { id: "dup-task-2", name: "b" },
      ],
    });
    expect(created.status).toBe(201);
    const listed = await call("GET", "/workflows?limit=10");
    expect(listed.body).toMatchObject({ total: 1, workflows: [{ workflow_id: created.body.workflow_id }] });
    const ambiguous = await call("GET", "/tasks/dup-task");
    expect(ambiguous.status).toBe(409);
    expect(ambiguous.body.error).toContain("dup-task-1, dup-task-2");
    // The same ids again are refused, naming the first taken; `?fresh=true` makes a copy under new ids.
    const again = await call("POST", "/workflows", { tasks: [{ id: "dup-task-1", name: "a" }] });
    expect(again.status).toBe(409);
    expect(again.body.error).toContain("task id dup-task-1 already exists");
    const fresh = await call("POST", "/workflows?fresh=true", { tasks: [{ id: "dup-task-1", name: "a" }] });
    expect(fresh.status).toBe(201);
    expect(fresh.body.tasks[0]).toMatchObject({ id: `${fresh.body.workflow_id}.dup-task-1`, local_id: "dup-task-1" });
    expect((await call("POST", "/workflows?fresh=maybe", { tasks: [{ name: "a" }] })).body.error).toContain("fresh:");
    expect((await call("DELETE", `/tasks/${id.slice(0, 6)}`)).status).toBe(204);
    expect((await call("GET", `/tasks/${id}`)).status).toBe(404);
  });

  test("tasks can be listed by metadata: every pair must match, values compared as text; bad filters are 400", async () => {
    setup();
    const mk = async (name: string, metadata?: Record<string, unknown>) =>
      (await call("POST", "/tasks", { name, ...(metadata ? { metadata } : {}) })).body.id as string;
    const prod = await mk("a", { env: "prod", n: 1, ok: true, tags: ["x"] });
    await mk("b", { env: "dev", n: 2 });
    await mk("c");
    const names = async (filter: unknown) => {
      const r = await call("GET", `/tasks?metadata=${encodeURIComponent(JSON.stringify(filter))}`);
      expect(r.status).toBe(200);
      return { total: r.body.total, names: r.body.tasks.map((t: { name: string }) => t.name) };
    };
    expect(await names({ env: "prod" })).toEqual({ total: 1, names: ["a"] });
    expect(await names({ n: "1", ok: "true" })).toEqual({ total: 1, names: ["a"] });
    expect(await names({ n: 2 })).toEqual({ total: 1, names: ["b"] });
    expect(await names({ env: "prod", n: 2 })).toEqual({ total: 0, names: [] });
    expect(await names({ missing: "x" })).toEqual({ total: 0, names: [] });
    expect(await names({ tags: '["x"]' })).toEqual({ total: 1, names: ["a"] });
    expect((await call("GET", "/tasks")).body.total).toBe(3);
    expect((await call("GET", `/tasks/${prod}`)).body.metadata).toEqual({ env: "prod", n: 1, ok: true, tags: ["x"] });
    const bad = async (q: string) => (await call("GET", `/tasks?${q}`)).body.error as string;
    expect(await bad("metadata=%7Bnope")).toBe("metadata: not a JSON object");
    expect(await bad(`metadata=${encodeURIComponent(JSON.stringify({ "a')": "1" }))}`)).toContain("keys may only hold");
    expect(await bad(`metadata=${encodeURIComponent("[1]")}`)).toContain("metadata:");
    expect(await bad("metadata=%7B%7D&metadata=%7B%7D")).toBe("metadata: give one JSON object, not several");
  });

  test("GET /tasks finds by state, text, proplet by name; bad filters are 400 naming the field", async () => {
    setup();
    h.proplet("p1");
    const mk = async (name: string) => (await call("POST", "/tasks", { name, file: b64("add") })).body.id as string;
    const done = await mk("adder");
    await mk("waiting one");
    await mk("fl-round-r1-p1");
    await call("POST", `/tasks/${done}/start`);
    h.result(done, "p1", "x".repeat(1000));
    const names = async (q: string) => {
      const r = await call("GET", `/tasks?${q}`);
      expect(r.status).toBe(200);
      return [r.body.total, r.body.tasks.map((t: { name: string }) => t.name)];
    };
    expect(await names("sort=name")).toEqual([2, ["adder", "waiting one"]]);
    expect(await names("state=Completed")).toEqual([1, ["adder"]]);
    expect(await names("q=WAIT")).toEqual([1, ["waiting one"]]);
    expect(await names(`q=${done.slice(0, 8)}`)).toEqual([1, ["adder"]]);
    expect(await names("kind=federated")).toEqual([1, ["fl-round-r1-p1"]]);
    expect(await names("include_rounds=true&sort=name&order=asc")).toEqual([
      3,
      ["adder", "fl-round-r1-p1", "waiting one"],
    ]);
    const pname = (await call("GET", "/proplets")).body.proplets[0].name as string;
    expect(await names(`proplet_id=${encodeURIComponent(pname)}`)).toEqual([1, ["adder"]]);
    expect(await names("proplet_id=p1")).toEqual([1, ["adder"]]);
    // A long result is a preview in the list, whole at /results.
    const listed = (await call("GET", "/tasks?state=3")).body.tasks[0];
    expect(listed.results).toBeUndefined();
    expect(listed).toMatchObject({ results_preview: "x".repeat(256), results_truncated: true, results_size: 1000 });
    expect((await call("GET", `/tasks/${done}/results`)).body.results).toBe("x".repeat(1000));
    const bad = async (q: string) => {
      const r = await call("GET", `/tasks?${q}`);
      expect(r.status).toBe(400);
      return r.body.error as string;
    };
    expect(await bad("state=Done")).toStartWith('state: "Done" is not a state');
    expect(await bad("state=9")).toStartWith("state:");
    expect(await bad(`q=${"a".repeat(201)}`)).toBe("q: at most 200 characters");
    expect(await bad("q=a&q=b")).toBe("q: give it once, not several times");
    expect(await bad("kind=other")).toBe("kind: must be one of standard, federated");
    expect(await bad("sort=id")).toStartWith("sort: must be one of created_at");
    expect(await bad("order=up")).toBe("order: must be one of asc, desc");
    expect(await bad("include_rounds=yes")).toStartWith("include_rounds:");
    expect(await bad(`proplet_id=${"p".repeat(300)}`)).toBe("proplet_id: at most 200 characters");
  });

  test("upload takes a .wasm multipart file and refuses anything else", async () => {
    setup();
    const id = (await call("POST", "/tasks", { name: "add" })).body.id;
    const form = (name: string, bytes: Uint8Array) => {
      const f = new FormData();
      f.set("file", new File([bytes], name));
      return f;
    };
    const notWasm = await call("PUT", `/tasks/${id}/upload`, form("x.wasm", new TextEncoder().encode("hello, world")));
    expect(notWasm).toEqual({ status: 400, body: { error: "file: invalid WASM file: missing magic bytes" } });
    const wrongName = await call("PUT", `/tasks/${id}/upload`, form("x.txt", fixture("add")));
    expect(wrongName.body.error).toContain("invalid file extension");
    const ok = await call("PUT", `/tasks/${id}/upload`, form("add.wasm", fixture("add")));
    expect(ok.status).toBe(200);
    expect(ok.body.file).toContain("<REDACTED>");
  });
});
