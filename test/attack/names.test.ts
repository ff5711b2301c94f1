import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { b64, http, identity, type Serve, spawnPropeller, startServe, until, untilAlive } from "../helpers.ts";

// Taking another proplet's name: a proplet goes by its identity's name (manager/proplets.ts), so a peer that wants
// the work pinned to "edge-1", or to pass for it in the fleet's views, has to get that name some other way. Played
// by real MQTT clients against real serve processes, with authentication on and off.

let authed: Serve;
let open: Serve; // --no-auth: nothing checks who a proplet says it is
const stop: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [authed, open] = await Promise.all([
    startServe({ extra: ["--no-local-proplet"] }),
    startServe({ extra: ["--no-auth", "--no-local-proplet"] }),
  ]);
});
afterAll(async () => {
  for (const s of stop) await s();
  await Promise.all([authed?.kill("SIGKILL"), open?.kill("SIGKILL")]);
});

const CREATE = "m/default/c/default/control/proplet/create";
const ALIVE = "m/default/c/default/control/proplet/alive";

describe("a proplet's name cannot be taken", () => {
  test("with authentication: another identity cannot announce itself as edge-1, nor be made with that name or id", async () => {
    const made = await http(`${authed.url}/entities`, "POST", { kind: "proplet", name: "edge-1" });
    expect(made.status).toBe(201);
    const edge = made.body.id as string;
    const real = spawnPropletAs(authed, edge, made.body.api_key);
    stop.push(() => real.kill());
    await untilAlive(authed.url, "edge-1", 15_000);

    // Mallory, a proplet with an identity of its own, says it is edge-1 (by id, then by name): the ACL refuses a
    // payload naming another proplet and closes the connection; a name in its metadata is ignored.
    const login = await identity(authed.url, "proplet", "mallory");
    const m = await mqtt.connectAsync(`mqtt://127.0.0.1:${authed.mqttPort}`, {
      clientId: "mallory",
      ...login,
      reconnectPeriod: 0,
    });
    const closed = new Promise<void>((resolve) => m.once("close", () => resolve()));
    m.publish(CREATE, JSON.stringify({ proplet_id: "edge-1", metadata: {} }), { qos: 1 });
    await closed;
    const again = await mqtt.connectAsync(`mqtt://127.0.0.1:${authed.mqttPort}`, {
      clientId: "mallory",
      ...login,
      reconnectPeriod: 0,
    });
    await again.publishAsync(CREATE, JSON.stringify({ proplet_id: "mallory", metadata: { name: "edge-1" } }), {
      qos: 1,
    });
    await until("mallory registered", async () => (await http(`${authed.url}/proplets/mallory`)).status === 200);
    expect((await http(`${authed.url}/proplets/mallory`)).body.name).toBe("proplet-mallory");
    expect((await http(`${authed.url}/proplets/edge-1`)).body).toMatchObject({ id: edge, name: "edge-1" });
    await again.endAsync();

    // Through the API: the name again, another's name as an id, and the name shaped as an id.
    const dup = await http(`${authed.url}/entities`, "POST", { kind: "proplet", name: "edge-1" });
    expect(dup).toMatchObject({ status: 409, body: { error: expect.stringContaining(`taken by proplet ${edge}`) } });
    const asId = await http(`${authed.url}/entities`, "POST", { kind: "proplet", id: "edge-1" });
    expect(asId.status).toBe(409);
    const uuid = await http(`${authed.url}/entities`, "POST", { kind: "proplet", name: crypto.randomUUID() });
    expect(uuid.status).toBe(400);
    expect((await http(`${authed.url}/health`)).status).toBe(200);
  }, 40_000);

  test("without authentication: a peer whose id is edge-1's name gets neither the name nor edge-1's pinned work", async () => {
    const made = await http(`${open.url}/entities`, "POST", { kind: "proplet", name: "edge-1" });
    const edge = made.body.id as string;
    // Both announce themselves from raw clients (nothing checks credentials here); the impostor's id is "edge-1".
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${open.mqttPort}`, { clientId: "peers", reconnectPeriod: 0 });
    stop.push(() => c.endAsync());
    const starts: { id: string; proplet_id: string }[] = [];
    c.on("message", (_t, payload) => starts.push(JSON.parse(payload.toString())));
    await c.subscribeAsync("m/default/c/default/control/manager/start");
    for (const id of [edge, "edge-1"]) {
      await c.publishAsync(CREATE, JSON.stringify({ proplet_id: id, metadata: {} }), { qos: 1 });
      await c.publishAsync(ALIVE, JSON.stringify({ proplet_id: id, status: "alive" }), { qos: 1 });
    }
    await until("both registered", async () => (await http(`${open.url}/proplets`)).body.total === 2);
    expect((await http(`${open.url}/proplets/edge-1`)).body).toMatchObject({ id: edge, name: "edge-1" });
    const listed = (await http(`${open.url}/proplets`)).body.proplets as { id: string; name: string }[];
    expect(listed.filter((p) => p.name === "edge-1").map((p) => p.id)).toEqual([edge]);
    const t = await http(`${open.url}/tasks`, "POST", { name: "add", file: b64("add"), proplet_id: "edge-1" });
    expect((await http(`${open.url}/tasks/${t.body.id}/start`, "POST")).status).toBe(200);
    await until("the start", () => starts.find((s) => s.id === t.body.id));
    expect(starts.find((s) => s.id === t.body.id)?.proplet_id).toBe(edge);
    expect((await http(`${open.url}/health`)).status).toBe(200);
  }, 40_000);
});

/** A real `propeller proplet` logged in with an identity made already. */
function spawnPropletAs(s: Serve, id: string, key: string) {
  return spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_ENTITY_ID: id,
    PROPLET_API_KEY: key,
  });
}
