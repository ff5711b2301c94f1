import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import mqttPacket from "mqtt-packet";
import { b64, http, identity, type Serve, startServe, until } from "../helpers.ts";
import { type RawSocket, rawSession as raw, tcp as rawTcp } from "../mqtt-raw.ts";

// The embedded broker attacked as a peer would: raw sockets and real MQTT clients against a real serve, with
// provisioned proplet credentials or none (docs/ARCHITECTURE.md, "Bounds and refusals", "MQTT broker").

const LOOPBACK_CAP = 40;
let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--mqtt-loopback-max-connections", String(LOOPBACK_CAP)] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const T = "m/default/c/default";
const MiB = 1 << 20;

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

async function healthy(): Promise<void> {
  const r = await fetch(`${s.url}/health`);
  expect(r.status).toBe(200);
}

const tcp = () => rawTcp(s.mqttPort);

/** Writes `chunk` until `total` bytes are out or the peer closes; returns the bytes written. */
async function pour(sock: RawSocket, chunk: Buffer, total: number): Promise<number> {
  let sent = 0;
  let open = true;
  void sock.gone.then(() => {
    open = false;
  });
  while (open && sent < total) {
    const more = sock.write(chunk);
    sent += chunk.length;
    if (!more) await Promise.race([new Promise((r) => sock.once("drain", r)), sock.gone, Bun.sleep(2000)]);
  }
  return sent;
}

/** A raw MQTT session: CONNECT with these credentials, CONNACK 0 expected. */
const rawSession = (clientId: string, login: { username: string; password: string }) =>
  raw(s.mqttPort, clientId, login);

/** A proplet played by an MQTT client: it announces itself and records what it receives. */
async function fakeProplet(id: string) {
  const login = await identity(s.url, "proplet", id);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: id, ...login, reconnectPeriod: 0 });
  const got: { topic: string; msg: Record<string, unknown> }[] = [];
  c.on("message", (topic, payload) => got.push({ topic, msg: JSON.parse(payload.toString()) }));
  await c.subscribeAsync([`${T}/control/manager/start`, `${T}/registry/server`], { qos: 1 });
  await c.publishAsync(`${T}/control/proplet/create`, JSON.stringify({ proplet_id: id, metadata: { max_tasks: 4 } }));
  return { c, got, login };
}

describe("memory before authentication", () => {
  test("a CONNECT declaring 256 MiB is closed at its header over TCP, serve's RSS stays flat", async () => {
    const before = rssMiB(s.proc.pid);
    const sock = await tcp();
    sock.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])); // CONNECT, remaining length 268,435,455
    const sent = await pour(sock, Buffer.alloc(MiB, 0x41), 96 * MiB);
    await Promise.race([sock.gone, Bun.sleep(3000)]);
    expect(sock.destroyed).toBe(true);
    const after = rssMiB(s.proc.pid);
    console.log(
      `256 MiB CONNECT over TCP: ${sent >> 20} MiB written before the close; RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB`,
    );
    expect(sent).toBeLessThan(96 * MiB);
    expect(after - before).toBeLessThan(24);
    await healthy();
  });

  test("the same over /mqtt: the WebSocket is closed at the header, and a frame over the cap is refused", async () => {
    const before = rssMiB(s.proc.pid);
    const open = (): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${s.httpPort}/mqtt`, "mqtt");
        ws.binaryType = "arraybuffer";
        ws.onopen = () => resolve(ws);
        ws.onerror = () => reject(new Error("no WebSocket"));
      });
    const closedOf = (ws: WebSocket) => new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
    const ws = await open();
    const closed = closedOf(ws);
    ws.send(new Uint8Array([0x10, 0xff, 0xff, 0xff, 0x7f]));
    for (let i = 0; i < 32 && ws.readyState === WebSocket.OPEN; i++) {
      ws.send(new Uint8Array(MiB));
      await Bun.sleep(5);
    }
    expect(await Promise.race([closed.then(() => "closed"), Bun.sleep(3000).then(() => "open")])).toBe("closed");
    // One frame larger than the largest packet (16 MiB and its header room) is refused whole.
    const big = await open();
    const bigClosed = closedOf(big);
    big.send(new Uint8Array(20 * MiB));
    expect(await Promise.race([bigClosed.then(() => "closed"), Bun.sleep(5000).then(() => "open")])).toBe("closed");
    const after = rssMiB(s.proc.pid);
    console.log(`256 MiB CONNECT over /mqtt: RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB`);
    expect(after - before).toBeLessThan(48);
    await healthy();
  });

  test("at most 32 WebSockets wait for their CONNECT at once: more are closed at open; a connected one gives its place back", async () => {
    // Bun holds a frame whole, up to a packet's 16 MiB, before CONNECT: 150 such sockets held 2.5 GB, unauthenticated.
    const opened: WebSocket[] = [];
    const attempt = (): Promise<{ ws: WebSocket; state: "open" | "closed" }> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${s.httpPort}/mqtt`, "mqtt");
        let settled = false;
        const settle = (state: "open" | "closed") => {
          if (settled) return;
          settled = true;
          resolve({ ws, state });
        };
        ws.onclose = () => settle("closed");
        ws.onerror = () => {};
        // Opened, then given a moment: serve closes a refused one at once.
        ws.onopen = () => setTimeout(() => settle("open"), 300);
      });
    const first = await Promise.all(Array.from({ length: 32 }, attempt));
    expect(first.map((a) => a.state)).toEqual(Array(32).fill("open"));
    opened.push(...first.map((a) => a.ws));
    expect((await attempt()).state).toBe("closed");
    // A real client over /mqtt gets in once a waiting socket has gone; connected, it no longer counts.
    opened.pop()!.close();
    await Bun.sleep(200);
    const login = await identity(s.url, "proplet", "ws-budget");
    const c = await mqtt.connectAsync(`ws://127.0.0.1:${s.httpPort}/mqtt`, {
      clientId: "ws-budget",
      ...login,
      reconnectPeriod: 0,
    });
    expect(c.connected).toBe(true);
    const next = await attempt();
    expect(next.state).toBe("open");
    for (const ws of [...opened, next.ws]) ws.close();
    await c.endAsync();
    await healthy();
  }, 30_000);

  test("a connection that never sends CONNECT is closed (within aedes' connect timeout, 10 s)", async () => {
    const sock = await tcp();
    const t0 = Date.now();
    await Promise.race([sock.gone, Bun.sleep(12_000)]);
    expect(sock.destroyed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(12_000);
  }, 15_000);

  test("QoS 2 publishes without PUBREL: the client is cut once its in-flight bytes pass the bound", async () => {
    const login = await identity(s.url, "proplet", "qos2-flooder");
    const sock = await rawSession("qos2-flooder", login);
    const before = rssMiB(s.proc.pid);
    const pad = "x".repeat(MiB);
    let sent = 0;
    let open = true;
    void sock.gone.then(() => {
      open = false;
    });
    for (let id = 1; id <= 160 && open; id++) {
      const payload = JSON.stringify({ proplet_id: "qos2-flooder", status: "alive", pad });
      const ok = sock.write(
        mqttPacket.generate({
          cmd: "publish",
          topic: `${T}/control/proplet/alive`,
          payload,
          qos: 2,
          messageId: id,
          dup: false,
          retain: false,
        }),
      );
      sent++;
      if (!ok) await Promise.race([new Promise((r) => sock.once("drain", r)), sock.gone, Bun.sleep(2000)]);
    }
    await Promise.race([sock.gone, Bun.sleep(5000)]);
    await Bun.sleep(500);
    const after = rssMiB(s.proc.pid);
    console.log(
      `QoS 2 flood: ${sent} MiB-sized publishes written; RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MiB`,
    );
    expect(sock.destroyed).toBe(true);
    expect(sent).toBeLessThan(160);
    expect(after - before).toBeLessThan(80);
    await healthy();
  }, 30_000);

  test("a connection flood from one address is refused beyond the cap; serve stays healthy, later ones get in", async () => {
    const socks = await Promise.all(Array.from({ length: LOOPBACK_CAP * 2 }, () => tcp().catch(() => undefined)));
    await Bun.sleep(500);
    const refused = socks.filter((x) => !x || x.destroyed).length;
    console.log(`connection flood: ${refused} of ${socks.length} refused (cap ${LOOPBACK_CAP})`);
    expect(refused).toBeGreaterThanOrEqual(LOOPBACK_CAP);
    expect(refused).toBeLessThan(socks.length);
    await healthy();
    for (const x of socks) x?.destroy();
    await Bun.sleep(1500); // places given back, the rate's bucket refilled
    const login = await identity(s.url, "proplet", "after-flood");
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
      clientId: "after-flood",
      ...login,
      reconnectPeriod: 0,
    });
    expect(c.connected).toBe(true);
    await c.endAsync();
  });
});

describe("client ids", () => {
  test("a proplet cannot take another proplet's client id, nor serve's proxy's; the victim stays connected", async () => {
    const victim = await fakeProplet("victim-p");
    let dropped = 0;
    victim.c.on("close", () => dropped++);
    const mallory = await identity(s.url, "proplet", "mallory-p");
    const attempt = async (clientId: string) => {
      try {
        const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
          clientId,
          ...mallory,
          reconnectPeriod: 0,
          connectTimeout: 3000,
        });
        await c.endAsync();
        return "connected";
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
    };
    expect(await attempt("victim-p")).toContain("Identifier rejected");
    // The proxy's client id follows from instance_id, which only an authenticated caller sees now.
    const iid = (await http<{ instance_id: string }>(`${s.url}/health`)).body.instance_id;
    expect(iid).toBeTruthy();
    expect(await attempt(`proxy-${iid}`)).toContain("Identifier rejected");
    expect(await attempt(`manager-${iid}`)).toContain("Identifier rejected");
    // Its own id, or one prefixed by it, is fine.
    expect(await attempt("mallory-p-2")).toBe("connected");
    await Bun.sleep(300);
    expect(dropped).toBe(0);
    expect(victim.c.connected).toBe(true);
    await victim.c.endAsync();
  });

  test("unauthenticated GET /health shows no instance_id (the role and version stay)", async () => {
    const anon = (await (await fetch(`${s.url}/health`)).json()) as Record<string, unknown>;
    expect(anon.status).toBe("pass");
    expect(anon.version).toBeTruthy();
    expect(anon.instance_id).toBeUndefined();
    const authed = await http<Record<string, unknown>>(`${s.url}/health`);
    expect(authed.body.instance_id).toBeTruthy();
  });
});

describe("who sees what", () => {
  test("a start pinned to one proplet reaches it, with its env, and no other proplet", async () => {
    const a = await fakeProplet("seer-a");
    const b = await fakeProplet("seer-b");
    try {
      const c = await http(`${s.url}/tasks`, "POST", {
        name: "add",
        file: b64("add"),
        inputs: [1, 2],
        env: { SECRET_TOKEN: "only-for-a" },
        proplet_id: "seer-a",
      });
      expect(c.status).toBe(201);
      expect((await http(`${s.url}/tasks/${c.body.id}/start`, "POST")).status).toBeLessThan(300);
      const start = await until("a to get its start", () => a.got.find((g) => g.msg.id === c.body.id), 5000);
      expect((start.msg.env as Record<string, string>).SECRET_TOKEN).toBe("only-for-a");
      await Bun.sleep(500);
      expect(b.got.some((g) => g.msg.id === c.body.id)).toBe(false);
      expect(JSON.stringify(b.got)).not.toContain("only-for-a");
    } finally {
      await a.c.endAsync();
      await b.c.endAsync();
    }
  });

  test("a registry request is stamped with its sender; a reply naming it reaches that proplet only", async () => {
    const a = await fakeProplet("asker-a");
    const b = await fakeProplet("asker-b");
    const proxyLogin = await identity(s.url, "proxy", "test-proxy");
    const proxy = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
      clientId: "test-proxy",
      ...proxyLogin,
      reconnectPeriod: 0,
    });
    try {
      const asked: Record<string, unknown>[] = [];
      proxy.on("message", (_t, p) => asked.push(JSON.parse(p.toString())));
      await proxy.subscribeAsync(`${T}/registry/proplet`, { qos: 1 });
      // a claims to be b: the broker overwrites proplet_id with a's own id.
      await a.c.publishAsync(
        `${T}/registry/proplet`,
        JSON.stringify({ app_name: "nowhere/x:1", proplet_id: "asker-b" }),
      );
      const req = await until("the proxy to get the request", () => asked.find((m) => m.app_name === "nowhere/x:1"));
      expect(req.proplet_id).toBe("asker-a");
      await proxy.publishAsync(
        `${T}/registry/server`,
        JSON.stringify({ app_name: "nowhere/x:1", proplet_id: "asker-a", error: "for a only" }),
      );
      // A chunk that names nobody is for every proplet (upstream's broadcast of chunks).
      await proxy.publishAsync(`${T}/registry/server`, JSON.stringify({ app_name: "shared/y:1", chunk_idx: 0 }));
      await until("a to get its reply", () => a.got.some((g) => g.msg.error === "for a only"));
      await until("b to get the broadcast", () => b.got.some((g) => g.msg.app_name === "shared/y:1"));
      expect(b.got.some((g) => g.msg.error === "for a only")).toBe(false);
    } finally {
      await proxy.endAsync();
      await a.c.endAsync();
      await b.c.endAsync();
    }
  });
});
