import { afterAll, beforeAll, expect, test } from "bun:test";
import { createConnection, createServer, type Server } from "node:net";
import type { Subprocess } from "bun";
import { b64, freePort, runTask, type Serve, startServe } from "../helpers.ts";
import { startMosquitto } from "../mosquitto.ts";

// A broker that goes away while serve subscribes: mqtt.js fails a SUBSCRIBE in flight with "Connection closed"
// when its connection drops. At start-up that rejection ended serve (`error: Connection closed`, seen once when
// mosquitto restarted under a manager coming up); serve must instead subscribe again once it is reconnected.
// Between serve and a real mosquitto sits a proxy that closes each of the first connections as soon as the
// client's first SUBSCRIBE goes through it, before the SUBACK can come back.
let mosquitto: Subprocess;
let proxy: Server;
let proxyPort: number;
let dropped = 0;
const DROPS = 3;

beforeAll(async () => {
  const m = await startMosquitto();
  mosquitto = m.proc;
  const port = m.port;
  proxy = createServer((client) => {
    const up = createConnection(port, "127.0.0.1");
    let watching = dropped < DROPS;
    client.on("error", () => {});
    up.on("error", () => {});
    client.on("data", (d) => {
      // A SUBSCRIBE is packet type 8 (0x82 with its fixed flags), sent after the CONNACK: the read holding it is
      // not forwarded and the connection is closed, so the SUBACK never comes.
      if (watching && d[0] === 0x82) {
        watching = false;
        dropped++;
        client.destroy();
        up.destroy();
        return;
      }
      up.write(d);
    });
    up.on("data", (d) => client.write(d));
    client.on("close", () => up.destroy());
    up.on("close", () => client.destroy());
  });
  proxyPort = await freePort();
  await new Promise<void>((resolve) => proxy.listen(proxyPort, "127.0.0.1", resolve));
});

afterAll(() => {
  proxy?.close();
  mosquitto?.kill("SIGKILL");
});

test("serve survives its broker dropping the connection while it subscribes, and runs tasks after", async () => {
  let s: Serve | undefined;
  try {
    s = await startServe({ extra: ["--mqtt-url", `mqtt://127.0.0.1:${proxyPort}`] });
    expect(dropped).toBe(DROPS);
    const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3] });
    expect(t).toMatchObject({ state: 3, results: "5" });
    expect(s.output()).not.toContain("Connection closed\n");
  } finally {
    await s?.kill("SIGKILL");
  }
});
