import { afterAll, beforeAll, expect, test } from "bun:test";
import mqttPacket from "mqtt-packet";
import { ALIVE_HISTORY } from "../../src/core/proplet.ts";
import { http, identity, type Serve, startServe, until } from "../helpers.ts";
import { type RawSocket, rawSession } from "../mqtt-raw.ts";

// A known proplet's heartbeat grows its history in place (manager/proplets.ts) and plain heartbeats skip zod
// (core/messages.ts plainHeartbeat), fed by the broker's own PUBLISH reader: attacked as a hostile or buggy proplet
// would, through a real serve. A proplet's beats change its own history only; a cordon, a removal, the Last Will,
// an offline message in the same read as a heartbeat, silence and being forgotten all end as they did before.

let s: Serve;
const T = "m/default/c/default/control";
const ALIVE = `${T}/proplet/alive`;

beforeAll(async () => {
  // Dead after 1 s of silence, forgotten after 3 s.
  s = await startServe({
    extra: ["--no-local-proplet", "--no-proxy", "--liveliness-threshold", "1", "--stale-proplet-removal", "3"],
  });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const packet = (id: string, body: object) =>
  mqttPacket.generate({
    cmd: "publish",
    topic: ALIVE,
    payload: JSON.stringify({ proplet_id: id, ...body }),
    qos: 0,
    dup: false,
    retain: false,
  });
const beat = (id: string, extra: object = {}) => packet(id, { status: "alive", tasks: [], runs: [], ...extra });

const logins = new Map<string, { username: string; password: string }>();
/** A proplet's raw session; `will`: its Last Will is the offline message of that proplet (the agent names itself). */
async function session(id: string, will?: string): Promise<RawSocket> {
  const login = logins.get(id) ?? (await identity(s.url, "proplet", id));
  logins.set(id, login);
  const offline = { proplet_id: will, status: "offline" };
  return rawSession(
    s.mqttPort,
    id,
    login,
    will ? { topic: ALIVE, payload: Buffer.from(JSON.stringify(offline)), qos: 0, retain: false } : undefined,
  );
}

const history = async (id: string) =>
  (await http<{ total: number; history: string[] }>(`${s.url}/proplets/${id}/alive-history?limit=100`)).body;
const view = async (id: string) => (await http(`${s.url}/proplets/${id}`)).body;

test("beats of one proplet, many in one read, change its history only: another's stays as it was", async () => {
  const a = await session("hh-a");
  const b = await session("hh-b");
  a.write(beat("hh-a"));
  await until("hh-a known", async () => (await view("hh-a"))?.alive);
  a.write(Buffer.concat(Array.from({ length: 14 }, () => beat("hh-a"))));
  await until("hh-a's history full", async () => (await history("hh-a")).total === ALIVE_HISTORY);
  await Bun.sleep(100);
  const before = await history("hh-a");
  b.write(beat("hh-b"));
  await until("hh-b known", async () => (await view("hh-b"))?.alive);
  await Bun.sleep(5);
  b.write(Buffer.concat(Array.from({ length: 3 }, () => beat("hh-b"))));
  await until("hh-b's four beats", async () => (await history("hh-b")).total === 4);
  expect(await history("hh-a")).toEqual(before);
  expect(before.history.every((at, i) => i === 0 || at >= before.history[i - 1]!)).toBe(true);
  a.destroy();
  b.destroy();
});

test("a cordoned proplet beats on and stays cordoned; a removed one comes back by its heartbeat with a new history", async () => {
  const sock = await session("hh-c");
  sock.write(Buffer.concat(Array.from({ length: 5 }, () => beat("hh-c"))));
  await until("hh-c's five beats", async () => (await history("hh-c")).total === 5);
  expect((await http(`${s.url}/proplets/hh-c/cordon`, "POST")).status).toBe(200);
  sock.write(Buffer.concat([beat("hh-c"), beat("hh-c")]));
  await until("hh-c's seven beats", async () => (await history("hh-c")).total === 7);
  expect(await view("hh-c")).toMatchObject({ alive: true, cordoned: true });
  const old = (await history("hh-c")).history;
  expect((await http(`${s.url}/proplets/hh-c`, "DELETE")).status).toBe(204);
  expect((await http(`${s.url}/proplets/hh-c`)).status).toBe(404);
  await Bun.sleep(5);
  sock.write(beat("hh-c"));
  await until("hh-c back", async () => (await http(`${s.url}/proplets/hh-c`)).status === 200);
  const now = await history("hh-c");
  expect(now.total).toBe(1);
  expect(old).not.toContain(now.history[0]);
  expect(await view("hh-c")).toMatchObject({ alive: true, cordoned: false });
  sock.destroy();
});

test("the Last Will makes a beating proplet offline at once; its next beat brings it back with its history", async () => {
  const first = await session("hh-w", "hh-w");
  first.write(Buffer.concat([beat("hh-w"), beat("hh-w"), beat("hh-w")]));
  await until("hh-w's three beats", async () => (await history("hh-w")).total === 3);
  first.destroy();
  await until("hh-w offline", async () => (await view("hh-w"))?.alive === false, 3000);
  const again = await session("hh-w", "hh-w");
  again.write(beat("hh-w"));
  await until("hh-w back", async () => (await view("hh-w"))?.alive === true, 3000);
  expect((await history("hh-w")).total).toBe(4);
  again.destroy();
});

test("a Last Will naming another proplet is not published: the beating victim stays alive", async () => {
  const victim = await session("hh-v");
  // Beating every 5 s by its own word, the victim counts as alive for 15 s after a beat whatever the 1 s threshold:
  // a slow machine cannot make it look dead here, only an offline message can.
  victim.write(
    mqttPacket.generate({
      cmd: "publish",
      topic: `${T}/proplet/create`,
      payload: JSON.stringify({ proplet_id: "hh-v", metadata: { liveliness_interval_s: 5 } }),
      qos: 0,
      dup: false,
      retain: false,
    }),
  );
  victim.write(beat("hh-v"));
  await until("hh-v alive", async () => (await view("hh-v"))?.alive);
  const forger = await session("hh-f", "hh-v");
  forger.write(beat("hh-f"));
  await until("hh-f alive", async () => (await view("hh-f"))?.alive);
  victim.write(beat("hh-v"));
  // Announced, then two beats: three in its history (an announcement counts as a heartbeat).
  await until("hh-v's second beat", async () => (await history("hh-v")).total === 3);
  forger.destroy(); // its Will goes now, if at all
  await Bun.sleep(300);
  expect(await view("hh-v")).toMatchObject({ alive: true });
  expect((await history("hh-v")).total).toBe(3);
  victim.destroy();
});

test("an offline message and a heartbeat in one read: the last one said is what holds", async () => {
  const sock = await session("hh-o");
  sock.write(beat("hh-o"));
  await until("hh-o alive", async () => (await view("hh-o"))?.alive);
  sock.write(Buffer.concat([beat("hh-o"), packet("hh-o", { status: "offline" })]));
  await until("hh-o offline", async () => (await view("hh-o"))?.alive === false, 3000);
  sock.write(Buffer.concat([packet("hh-o", { status: "offline" }), beat("hh-o")]));
  await until("hh-o alive again", async () => (await view("hh-o"))?.alive === true, 3000);
  sock.destroy();
});

test("silent past the threshold, then beating: alive again; forgotten after longer, then beating: a new proplet", async () => {
  const sock = await session("hh-s");
  sock.write(Buffer.concat([beat("hh-s"), beat("hh-s")]));
  await until("hh-s's two beats", async () => (await history("hh-s")).total === 2);
  await until("hh-s dead", async () => (await view("hh-s"))?.alive === false, 3000);
  sock.write(beat("hh-s"));
  await until("hh-s alive", async () => (await view("hh-s"))?.alive === true, 3000);
  expect((await history("hh-s")).total).toBe(3);
  await until("hh-s forgotten", async () => (await http(`${s.url}/proplets/hh-s`)).status === 404, 8000);
  sock.write(beat("hh-s"));
  await until("hh-s again", async () => (await http(`${s.url}/proplets/hh-s`)).status === 200);
  expect((await history("hh-s")).total).toBe(1);
  sock.destroy();
});

test("heartbeats zod alone decides (a null, an extra key, a long run id, a number) are judged as before", async () => {
  const sock = await session("hh-z");
  sock.write(beat("hh-z"));
  await until("hh-z alive", async () => (await view("hh-z"))?.alive);
  await Bun.sleep(5);
  // Taken: null as absent, an unknown key ignored, offline_from/offline_to.
  sock.write(packet("hh-z", { status: null, namespace: "x", tasks: null, extra: { deep: [1] } }));
  await until("the beat with nulls", async () => (await history("hh-z")).total === 2);
  await Bun.sleep(5);
  sock.write(packet("hh-z", { offline_from: "2026-12-07T04:00:00Z", offline_to: "2026-12-07T04:00:05Z" }));
  await until("the beat after a cut", async () => (await history("hh-z")).total === 3);
  await Bun.sleep(5);
  // Dropped: a run id over 64 characters, a task id that is a number, a status that is a number.
  sock.write(
    Buffer.concat([
      packet("hh-z", { tasks: ["t"], runs: ["r".repeat(65)] }),
      packet("hh-z", { tasks: [1] }),
      packet("hh-z", { status: 1 }),
    ]),
  );
  await Bun.sleep(300);
  expect((await history("hh-z")).total).toBe(3);
  sock.destroy();
});
