import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import mqtt from "mqtt";
import { http, identity, type Serve, startServe } from "../helpers.ts";

// A proplet's discovery message (`create`) was written to the store at once, each time: 20,000 of them from one
// identity, each with other metadata, wrote 21 MiB to the disk in 8 s (about 9 GB an hour of flash wear on
// demand), and logged a line each (a fresh-eyes attacker's finding). An announcement from a proplet online and
// heard now takes effect at once and reaches the disk with the next batch of heartbeats.

const T = "m/default/c/default/control/proplet";
let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
}, 30_000);
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const written = () => Number(/wchar: (\d+)/.exec(readFileSync(`/proc/${s.proc.pid}/io`, "utf8"))![1]);

test("2,000 announcements from one proplet, each with other metadata: a few KiB written; the last takes effect", async () => {
  const login = await identity(s.url, "proplet", "chatty");
  const p = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "chatty", ...login });
  const hello = JSON.stringify({ proplet_id: "chatty", metadata: { os: "linux", max_tasks: 2 } });
  await p.publishAsync(`${T}/create`, hello, { qos: 1 });
  await Bun.sleep(300);
  const before = written();
  const nth = (i: number) =>
    JSON.stringify({ proplet_id: "chatty", metadata: { os: "linux", max_tasks: 2, n: `${i}` } });
  // One at a time, each acknowledged: a group commit took in a burst sent at once (one row, written once).
  for (let i = 0; i <= 2000; i++) await p.publishAsync(`${T}/create`, nth(i), { qos: 1 });
  await Bun.sleep(1500);
  const grew = written() - before;
  console.log(`2,000 creates: ${grew} bytes written`);
  expect(grew).toBeLessThan(512 * 1024);
  expect(
    s
      .output()
      .split("\n")
      .filter((l) => l.includes("proplet chatty reconnected")).length,
  ).toBeLessThan(3);
  // A changed announcement is stored at once, as before.
  await p.publishAsync(
    `${T}/create`,
    JSON.stringify({ proplet_id: "chatty", metadata: { os: "linux", max_tasks: 7 } }),
    {
      qos: 1,
    },
  );
  await Bun.sleep(200);
  expect((await http(`${s.url}/proplets/chatty`)).body.metadata.max_tasks).toBe(7);
  await p.endAsync();
}, 60_000);
