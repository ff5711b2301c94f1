import { afterAll, expect, test } from "bun:test";
import { http, type Proc, type Serve, spawnPropeller, startServe, until } from "../helpers.ts";

// A proplet whose credentials the broker refuses (real serve and proplet processes). mqtt.js gave up for good on
// a refused CONNACK: the proplet then said "waiting for the MQTT broker…" forever, and stayed out once the broker
// would have let it in. It now says it is refused, and tries again every 5 s.

let s: Serve | undefined;
let p: Proc | undefined;

afterAll(async () => {
  await p?.kill();
  await s?.kill();
});

test("refused credentials are said as such and tried again: the proplet gets in once the broker lets it", async () => {
  s = await startServe();
  const ports = { http: Number(new URL(s.url).port), mqtt: s.mqttPort };
  p = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    PROPLET_ENTITY_ID: "edge-refused",
    PROPLET_API_KEY: "not-the-key",
  });
  await until("the refusal to be said", async () => p!.output().includes("refuses this proplet's credentials"));
  expect(p.output()).toContain("Connection refused: Not authorized (the broker refused these credentials");
  expect(p.output()).not.toContain("waiting for the MQTT broker");
  // And how to get an identity the site accepts.
  expect(p.output()).toContain("then `propeller proplet --join URL --token TOKEN`");
  // The broker's side mended: the same ports, a serve that asks for no credentials (as a restored or
  // re-provisioned site would accept these).
  await s.kill();
  s = await startServe({ extra: ["--no-auth"], ports });
  const seen = await until(
    "the proplet to join",
    async () => {
      const r = await http<{ proplets: { id: string; alive: boolean }[] }>(`${s!.url}/proplets`);
      return r.body.proplets.find((x) => x.id === "edge-refused" && x.alive);
    },
    15_000,
  );
  expect(seen).toBeDefined();
}, 40_000);

test("an MQTT address with serve's HTTP port says it is no MQTT broker and which port to give", async () => {
  // Before: "Invalid header flag bits, must be 0x0 for puback packet" (the HTTP answer parsed as MQTT), nothing more.
  s ??= await startServe();
  const q = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${new URL(s.url).port}`,
    PROPLET_ENTITY_ID: "edge-wrong-port",
    PROPLET_API_KEY: "k",
  });
  try {
    await until("the hint", async () => q.output().includes("does not speak MQTT"));
    expect(q.output()).toContain("serve's MQTT port is its --mqtt-port, default 1883, not its --http-port");
  } finally {
    await q.kill();
  }
}, 30_000);
