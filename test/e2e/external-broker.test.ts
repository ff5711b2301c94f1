import { afterAll, beforeAll, expect, test } from "bun:test";
import { b64, freePort, runTask, type Serve, spawnPropeller, startServe, until, untilAlive } from "../helpers.ts";
import { startMosquitto } from "../mosquitto.ts";

// `serve --mqtt-url` against a real mosquitto: no embedded broker; the manager, the local proplet and a
// separate proplet all meet on mosquitto.
let port: number;
let mosquitto: ReturnType<typeof Bun.spawn>;
let s: Serve;

beforeAll(async () => {
  const m = await startMosquitto();
  mosquitto = m.proc;
  port = m.port;
  s = await startServe({ extra: ["--mqtt-url", `mqtt://127.0.0.1:${port}`] });
});

afterAll(async () => {
  await s?.kill("SIGKILL");
  mosquitto?.kill("SIGKILL");
});

test("serve uses the external broker and runs tasks through it", async () => {
  expect(s.output()).toContain(`using external MQTT broker mqtt://127.0.0.1:${port}`);
  const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [10, 20] });
  expect(t).toMatchObject({ state: 3, results: "30" });
  // No embedded broker: the mqtt port serve would have used is not listening.
  expect(s.output()).not.toContain("embedded MQTT broker");
});

test("a separate proplet on mosquitto runs a task pinned to it", async () => {
  const p = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: `tcp://127.0.0.1:${port}`,
    PROPLET_ENTITY_ID: "mosquitto-proplet",
  });
  try {
    await untilAlive(s.url, "mosquitto-proplet");
    const t = await runTask(s.url, {
      name: "hello",
      file: b64("hello"),
      inputs: ["Mosquitto"],
      proplet_id: "mosquitto-proplet",
    });
    expect(t).toMatchObject({ state: 3, results: "Hello Mosquitto from hello\n" });
  } finally {
    await p.kill("SIGKILL");
  }
});

test("a proplet started before its broker waits for it and then joins", async () => {
  const late = await freePort();
  const p = spawnPropeller(["proplet"], {
    PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${late}`,
    PROPLET_ENTITY_ID: "early-bird",
    PROPLET_LIVELINESS_INTERVAL: "1",
  });
  const bin = Bun.which("mosquitto") ?? "/usr/sbin/mosquitto";
  let m: ReturnType<typeof Bun.spawn> | undefined;
  let n: Serve | undefined;
  try {
    await until("the proplet to say it waits", () => p.output().includes("waiting for the MQTT broker"), 6000);
    m = Bun.spawn([bin, "-p", String(late)], { stdout: "ignore", stderr: "ignore" });
    n = await startServe({ extra: ["--mqtt-url", `mqtt://127.0.0.1:${late}`, "--no-local-proplet"] });
    await untilAlive(n!.url, "early-bird", 8000);
  } finally {
    await p.kill("SIGKILL");
    await n?.kill("SIGKILL");
    m?.kill("SIGKILL");
  }
});
