import { afterEach, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { propletName } from "../../../src/core/proplet.ts";
import { createApp } from "../../../src/manager/api/app.ts";
import { Identities } from "../../../src/manager/identities.ts";
import { Manager } from "../../../src/manager/manager.ts";
import { b64 } from "../../helpers.ts";
import { type Harness, harness } from "./harness.ts";

// A provisioned proplet goes by its identity's name: in every view, and wherever a proplet id is taken. Names are
// unique per site and never another proplet's id. In-process, on the real rooms (the e2e is test/e2e/names.test.ts).

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
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe("proplet names", () => {
  test("the identity's name is the proplet's, by which it is found and pinned", async () => {
    setup();
    const e = (await call("POST", "/entities", { kind: "proplet", name: "edge-1" })).body;
    h.proplet(e.id);
    expect((await call("GET", "/proplets")).body.proplets).toMatchObject([{ id: e.id, name: "edge-1" }]);
    expect((await call("GET", "/proplets/edge-1")).body).toMatchObject({ id: e.id, name: "edge-1", alive: true });
    expect((await call("GET", "/proplets/edge-1/alive-history")).body.total).toBe(1);
    expect((await call("GET", "/proplets/edge-1/metrics")).status).toBe(200);
    // A name typed wrong is answered with the one it nearly is; one like no other, with nothing.
    expect(await call("GET", "/proplets/edge-9")).toEqual({
      status: 404,
      body: { error: "proplet edge-9 not found (no proplet has that id or name; did you mean edge-1?)" },
    });
    expect((await call("POST", "/proplets/edg-1/cordon")).body.error).toBe(
      "proplet edg-1 not found (no proplet has that id or name; did you mean edge-1?)",
    );
    expect((await call("GET", "/proplets/gateway-north")).body.error).toBe(
      "proplet gateway-north not found (no proplet has that id or name)",
    );
    // Pinned by name: placed on it, and the task then names it by id.
    h.proplet("other");
    const t = (await call("POST", "/tasks", { name: "add", file: b64("add"), proplet_id: "edge-1" })).body.id;
    expect((await call("POST", `/tasks/${t}/start`)).status).toBe(200);
    expect(h.bus.starts.at(-1)).toMatchObject({ id: t, proplet_id: e.id });
    expect((await call("GET", `/tasks/${t}`)).body).toMatchObject({ proplet_id: e.id, proplet_name: "edge-1" });
    expect((await call("GET", "/tasks")).body.tasks[0]).toMatchObject({ proplet_id: e.id, proplet_name: "edge-1" });
    const ghost = (await call("POST", "/tasks", { name: "add", file: b64("add"), proplet_id: "edge-9" })).body.id;
    expect((await call("POST", `/tasks/${ghost}/start`)).body.error).toContain("proplet edge-9 (pinned by the task)");
  });

  test("a name is unique, is no one's id, and does not look like one", async () => {
    setup();
    const first = await call("POST", "/entities", { kind: "proplet", name: "edge-1" });
    expect(first.status).toBe(201);
    const dup = await call("POST", "/entities", { kind: "proplet", name: "edge-1" });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toContain(`name edge-1 is taken by proplet ${first.body.id}`);
    // Another identity's id as a name, and another's name as an id.
    expect((await call("POST", "/entities", { kind: "proplet", name: first.body.id })).status).toBe(400); // a UUID
    expect((await call("POST", "/entities", { kind: "proplet", id: "gw-9", name: "gw-nine" })).status).toBe(201);
    const idAsName = await call("POST", "/entities", { kind: "proplet", name: "gw-9" });
    expect(idAsName).toEqual({
      status: 409,
      body: { error: expect.stringContaining("name gw-9 is another identity's id") },
    });
    const asId = await call("POST", "/entities", { kind: "proplet", id: "edge-1" });
    expect(asId).toMatchObject({ status: 409, body: { error: expect.stringContaining("id edge-1 is the name of") } });
    // A proplet known without an identity (it ran unauthenticated): its id and name are taken too.
    h.proplet("loose");
    const looseName = (await call("GET", "/proplets/loose")).body.name;
    expect((await call("POST", "/entities", { kind: "proplet", name: "loose" })).status).toBe(409);
    expect((await call("POST", "/entities", { kind: "proplet", name: looseName })).status).toBe(409);
    const uuid = await call("POST", "/entities", { kind: "proplet", name: crypto.randomUUID() });
    expect(uuid).toMatchObject({ status: 400, body: { error: expect.stringContaining("name: looks like an id") } });
    // Its own id as its name is no one else's.
    expect((await call("POST", "/entities", { kind: "proplet", id: "gw-2", name: "gw-2" })).status).toBe(201);
    // An identity made later for the loose proplet gives it its name at once.
    expect((await call("POST", "/entities", { kind: "proplet", id: "loose", name: "edge-2" })).status).toBe(201);
    await h.settle();
    expect((await call("GET", "/proplets/edge-2")).body).toMatchObject({ id: "loose", name: "edge-2" });
  });

  test("a revoked identity's name is free once its proplet is forgotten", async () => {
    setup();
    const old = (await call("POST", "/entities", { kind: "proplet", name: "edge-1" })).body.id;
    h.proplet(old);
    expect((await call("DELETE", `/entities/${old}`)).status).toBe(204);
    const held = await call("POST", "/entities", { kind: "proplet", name: "edge-1" });
    expect(held.status).toBe(409);
    expect(held.body.error).toContain(`proplet ${old} (one gone for good: propeller proplets delete ${old})`);
    expect((await call("DELETE", "/proplets/edge-1")).status).toBe(204);
    const next = await call("POST", "/entities", { kind: "proplet", name: "edge-1" });
    expect(next.status).toBe(201);
    h.proplet(next.body.id);
    expect((await call("GET", "/proplets/edge-1")).body.id).toBe(next.body.id);
  });

  test("a proplet without an identity never takes an identity's name; names survive a restart", async () => {
    setup();
    // The name a proplet with this id would make up for itself, given to another's identity first.
    const made = propletName("stray");
    const e = (await call("POST", "/entities", { kind: "proplet", name: made })).body;
    h.proplet("stray");
    h.proplet(e.id);
    const stray = (await call("GET", "/proplets/stray")).body.name;
    expect(stray).not.toBe(made);
    expect(stray).toStartWith(`${made}-`);
    expect((await call("GET", `/proplets/${made}`)).body.id).toBe(e.id);
    // Nor by taking its name as its id (no broker checks ids without authentication): the name is the identity's.
    h.proplet(made);
    expect((await call("GET", `/proplets/${made}`)).body).toMatchObject({ id: e.id, name: made });
    const t = await h.create({ name: "add", proplet_id: made });
    await h.m.dispatcher.start(t);
    expect(h.bus.starts.at(-1)).toMatchObject({ id: t, proplet_id: e.id });
    // A new manager on the same store: the same names.
    await h.m.shutdown();
    const again = new Manager(h.store, h.bus, new Identities(h.store), {
      livelinessThresholdMs: 30_000,
      scheduler: "round-robin",
    });
    expect(again.proplets.byIdOrName(made)?.id).toBe(e.id);
    expect(again.proplets.byIdOrName(stray)?.id).toBe("stray");
  });
});
