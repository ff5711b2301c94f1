import { afterEach, expect, setSystemTime, test } from "bun:test";
import { ALIVE_HISTORY } from "../../../src/core/proplet.ts";
import { harness } from "./harness.ts";

// Heartbeats of a proplet the manager holds grow its history in place (manager/proplets.ts): the history is still
// the last ALIVE_HISTORY beats in order, what is stored is what is held, and an offline proplet comes back.

afterEach(() => setSystemTime());

test("15 heartbeats keep the last 10 in order, stored as held; offline then back", async () => {
  const h = harness();
  const t0 = Date.parse("2026-12-07T04:00:00.000Z");
  setSystemTime(new Date(t0));
  h.proplet("hb-1");
  const beat = (i: number) => {
    setSystemTime(new Date(t0 + i * 1000));
    h.m.inbound.alive({ proplet_id: "hb-1", status: "alive", tasks: [] });
  };
  for (let i = 1; i <= 15; i++) beat(i);
  const want = Array.from({ length: ALIVE_HISTORY }, (_, k) => new Date(t0 + (6 + k) * 1000).toISOString());
  expect(h.m.proplets.get("hb-1")!.alive_history).toEqual(want);
  expect(h.m.proplets.view("hb-1")).toMatchObject({ alive: true, last_alive_at: want.at(-1) });

  h.m.inbound.alive({ proplet_id: "hb-1", status: "offline" });
  expect(h.m.proplets.view("hb-1").alive).toBe(false);
  beat(16);
  expect(h.m.proplets.view("hb-1")).toMatchObject({ alive: true, last_alive_at: new Date(t0 + 16_000).toISOString() });
  beat(17);
  const held = h.m.proplets.get("hb-1")!;
  expect(held.alive_history.at(-1)).toBe(new Date(t0 + 17_000).toISOString());
  expect(held.alive_history).toHaveLength(ALIVE_HISTORY);

  await h.m.shutdown(); // writes the heartbeats not written yet
  expect(h.store.proplets.get("hb-1")?.alive_history).toEqual(held.alive_history);
  h.store.close();
});
