import { expect, test } from "bun:test";
import {
  b64,
  fixture,
  http,
  spawnProplet,
  startRunning,
  startServe,
  until,
  untilAlive,
  untilEnded,
} from "../helpers.ts";

// A proplet stopped (SIGTERM: an upgrade, a reboot) while tasks are there. Before: a run already under way ended
// "task stopped" (the guest's interrupt check knows no other word), as if a user had stopped it; a run still being
// prepared was not stopped at all, started after the offline message, and its task stayed Running, its proplet
// "unreachable", until the partition grace ran out. Now each ends at once saying the proplet shut down.

test("tasks on a proplet that shuts down end saying so, whether running or still being prepared", async () => {
  const s = await startServe({ extra: ["--no-local-proplet"] });
  const p = await spawnProplet(s, "going-away");
  try {
    await untilAlive(s.url, "going-away", 20_000);
    const ticker = { name: "ticker", file: b64("ticker"), inputs: [600, 100] };
    // One under way: its guest has printed.
    const running = await startRunning(s.url, ticker);
    await until("the guest's first line", async () => {
      const logs = (await http(`${s.url}/tasks/${running.body.id}/logs`)).body;
      return JSON.stringify(logs).includes("tick 1");
    });
    // One just sent: the proplet is still preparing it when the signal comes.
    const preparing = await startRunning(s.url, ticker);
    const sent = Date.now();
    await p.kill("SIGTERM");
    for (const t of [running, preparing]) {
      const ended = await untilEnded(s.url, t.body.id, "the task to end with its proplet");
      expect({ state: ended.state, error: ended.error }).toEqual({ state: 4, error: "proplet shutting down" });
    }
    // Settled by the proplet's own word, not by the partition grace.
    expect(Date.now() - sent).toBeLessThan(5000);
    expect((await http(`${s.url}/proplets/going-away`)).body.task_count).toBe(0);
  } finally {
    await p.kill("SIGKILL");
    await s.kill("SIGKILL");
  }
}, 60_000);

test("a start that reaches a proplet while it shuts down is refused, saying so, not run", async () => {
  // A module served slowly keeps a run preparing, so the shutdown waits on it: a window to send a start into.
  let asked = 0;
  const slow = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch() {
      asked++;
      await Bun.sleep(1500);
      return new Response(fixture("add"), { headers: { "content-type": "application/wasm" } });
    },
  });
  const s = await startServe({ extra: ["--no-local-proplet"] });
  const p = await spawnProplet(s, "closing");
  try {
    await untilAlive(s.url, "closing", 20_000);
    const fetching = await startRunning(s.url, {
      name: "add",
      image_url: `http://127.0.0.1:${slow.port}/add.wasm`,
      inputs: [1, 2],
    });
    await until("the proplet to ask for the module", () => asked > 0);
    const exited = p.kill("SIGTERM");
    await Bun.sleep(300);
    const late = await startRunning(s.url, { name: "add", file: b64("add"), inputs: [1, 2], proplet_id: "closing" });
    for (const t of [fetching, late]) {
      const ended = await untilEnded(s.url, t.body.id, "the task to end with its proplet");
      expect({ state: ended.state, error: ended.error }).toEqual({ state: 4, error: "proplet shutting down" });
    }
    await exited;
    expect(p.output()).toContain(`task ${late.body.id}: start refused, the proplet is shutting down`);
  } finally {
    slow.stop(true);
    await p.kill("SIGKILL");
    await s.kill("SIGKILL");
  }
}, 60_000);
