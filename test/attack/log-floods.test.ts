import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect } from "node:net";
import mqtt from "mqtt";
import { http, peer, type Serve, startServe, until } from "../helpers.ts";

// What a sender makes serve write to its log: every refusal was a line, so a flood of them was a flood of lines
// (a walk measured 1.3 million in 10 s from refused subscriptions, 470,000 in 8 s from malformed results, 179 MB in
// 10 s from refused CONNECTs with 8 KB usernames, 20,000 error lines in 3 s from malformed HTTP bodies). Refusals
// are now folded per sender and kind (src/core/once-per.ts `Folded`), and a proplet's packets each cost at least
// 1 KiB of its read rate (src/broker/limits.ts), so small messages cannot come 45,000 a second.

const T = "m/default/c/default/control";
let s: Serve;
beforeAll(async () => {
  s = await startServe();
}, 30_000);
afterAll(() => s?.kill("SIGKILL"));

const lines = (has: string) =>
  s
    .output()
    .split("\n")
    .filter((l) => l.includes(has));

test("malformed chunked bodies before authentication: 400 each, and no error line", async () => {
  const port = Number(new URL(s.url).port);
  const one = () =>
    new Promise<string>((resolve) => {
      const c = connect(port, "127.0.0.1");
      let got = "";
      c.on("connect", () =>
        c.write(
          'POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"token":"aaaaa\r\n',
        ),
      );
      c.on("data", (d) => {
        got += d;
        c.destroy();
      });
      c.on("close", () => resolve(got.split("\r\n")[0] ?? ""));
      c.on("error", () => {});
    });
  const answers = [];
  for (let i = 0; i < 200; i++) answers.push(await one());
  expect(new Set(answers)).toEqual(new Set(["HTTP/1.1 400 Bad Request"]));
  expect(lines("[error]")).toEqual([]);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});

test("refused CONNECTs with 8 KB usernames: a few short lines, not one each", async () => {
  const name = "u".repeat(8100);
  for (let i = 0; i < 300; i++) {
    const c = mqtt.connect(`mqtt://127.0.0.1:${s.mqttPort}`, {
      clientId: `x${i}`,
      username: name,
      password: "wrong",
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve) => {
      c.once("error", () => resolve());
      c.once("close", () => resolve());
    });
    c.end(true);
  }
  const said = lines("mqtt: refused entity");
  expect(said.length).toBeGreaterThanOrEqual(1);
  expect(said.length).toBeLessThanOrEqual(3);
  for (const l of said) expect(l.length).toBeLessThan(600);
}, 30_000);

test("a proplet flooding refused subscriptions and results for made-up tasks: folded lines, and its packets slowed", async () => {
  const p = await peer(s, "proplet", "noisy");
  try {
    for (let i = 0; i < 200; i++) void p.subscribeAsync(`${T}/nope/${i}`).catch(() => {});
    // 50,000 small results: 5 MB, within the byte rate, but past the burst of packets each costs.
    for (let i = 0; i < 50_000; i++)
      p.publish(`${T}/proplet/results`, JSON.stringify({ task_id: `made-up-${i}`, proplet_id: "noisy", results: 1 }));
    await until("its reads to be slowed", () => lines("mqtt: proplet noisy sends more than").length > 0, 20_000);
    await Bun.sleep(1000);
    expect(lines("may not subscribe to").length).toBeLessThanOrEqual(2);
    expect(lines("result for unknown task").length).toBeLessThanOrEqual(3);
    expect((await http(`${s.url}/health`)).status).toBe(200);
  } finally {
    p.end(true);
  }
}, 40_000);
