import { describe, expect, test } from "bun:test";
import { IdleRelease } from "../../../src/cli/idle-release.ts";

// serve's memory release after a burst (src/cli/idle-release.ts), on real timers with a short quiet time and a
// resident-memory figure the test sets.

const MiB = 1 << 20;

/** Resident memory starts at 100 MiB; a release brings it to `after` MiB when given. */
function make(quietMs = 100, growthBytes = 8 * MiB, after?: number) {
  let rss = 100 * MiB;
  let released = 0;
  const deep: boolean[] = [];
  const release = (d: boolean) => {
    released++;
    deep.push(d);
    if (after !== undefined) rss = after * MiB;
  };
  const idle = new IdleRelease(release, { quietMs, growthBytes, deepGrowthBytes: 32 * MiB, rss: () => rss });
  return {
    idle,
    released: () => released,
    deep,
    setRss: (mib: number) => {
      rss = mib * MiB;
    },
  };
}

describe("idle release", () => {
  test("runs once after activity that grew memory, once quiet; not again while nothing happens", async () => {
    const m = make();
    m.setRss(150);
    m.idle.activity();
    await Bun.sleep(50);
    expect(m.released()).toBe(0); // not quiet yet
    await Bun.sleep(150);
    expect(m.released()).toBe(1);
    expect(m.deep).toEqual([true]); // +50 MiB: a burst, compiled code dropped too
    await Bun.sleep(400);
    expect(m.released()).toBe(1); // no timer of its own: idle, nothing more runs
    m.idle.stop();
  });

  test("never runs when nothing happened, whatever memory shows", async () => {
    const m = make();
    m.setRss(500);
    await Bun.sleep(300);
    expect(m.released()).toBe(0);
    m.idle.stop();
  });

  test("activity keeps postponing it: it runs after the last", async () => {
    const m = make();
    m.setRss(150);
    for (let i = 0; i < 6; i++) {
      m.idle.activity();
      await Bun.sleep(40);
    }
    expect(m.released()).toBe(0); // 240 ms of activity, never 100 ms quiet
    await Bun.sleep(200);
    expect(m.released()).toBe(1);
    m.idle.stop();
  });

  test("activity that left memory under the margin costs no release; growth after a release is counted from it", async () => {
    const m = make(100, 8 * MiB, 120);
    m.setRss(105); // +5 MiB over the start: under the 8 MiB margin
    m.idle.activity();
    await Bun.sleep(250);
    expect(m.released()).toBe(0);
    m.setRss(130);
    m.idle.activity();
    await Bun.sleep(250);
    expect(m.released()).toBe(1); // it left 120 MiB: the new baseline
    m.setRss(125); // +5 over it
    m.idle.activity();
    await Bun.sleep(250);
    expect(m.released()).toBe(1);
    m.setRss(129); // +9 over it
    m.idle.activity();
    await Bun.sleep(250);
    expect(m.released()).toBe(2);
    // +30 MiB over the start, then +9: neither is a burst that makes compiled code worth dropping.
    expect(m.deep).toEqual([false, false]);
    m.idle.stop();
  });

  test("stopped, it never runs", async () => {
    const m = make();
    m.setRss(150);
    m.idle.activity();
    m.idle.stop();
    m.idle.activity();
    await Bun.sleep(250);
    expect(m.released()).toBe(0);
  });
});
