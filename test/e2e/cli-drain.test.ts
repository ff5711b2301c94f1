import { describe, expect, test } from "bun:test";
import { run } from "../cli-run.ts";
import {
  b64,
  http,
  spawnProplet,
  startRunning,
  startServe,
  tokenOf,
  until,
  untilAlive,
  untilEnded,
} from "../helpers.ts";

// `propeller proplets cordon | uncordon | drain` as an operator meets it, against real serve and proplet processes:
// a cordon kept across a restart, a drain that waits for the running task, and --force. The rest of the CLI's
// operations (hand-over 503s, id prefixes, --json errors, no orphans) are cli-ops.test.ts.

describe("proplets cordon | uncordon | drain", () => {
  test("cordon (stored across a restart): a new task waits saying so; uncordon: it runs", async () => {
    let s = await startServe({ extra: ["--no-local-proplet"] });
    const p = await spawnProplet(s, "cordon-one");
    try {
      await untilAlive(s.url, "cordon-one", 20_000);
      const env = () => ({ PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });
      const c = await run(["proplets", "cordon", "cordon-o"], env());
      expect({ code: c.code, out: c.stdout }).toEqual({ code: 0, out: "proplet cordon-one cordoned\n" });
      // A manager restart keeps it: it is stored with the proplet.
      await s.kill("SIGTERM");
      s = await startServe({
        dataDir: s.dataDir,
        ports: { http: s.httpPort, mqtt: s.mqttPort },
        extra: ["--no-local-proplet"],
      });
      await untilAlive(s.url, "cordon-one", 20_000);
      const list = await run(["proplets", "list", "--json"], env());
      const listed = JSON.parse(list.stdout).proplets as { id: string; name: string; cordoned: boolean }[];
      expect(listed.map((x) => [x.id, x.cordoned])).toEqual([["cordon-one", true]]);
      const created = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2] });
      expect((await http(`${s.url}/tasks/${created.body.id}/start`, "POST")).status).toBe(200);
      await Bun.sleep(500);
      const waiting = (await http(`${s.url}/tasks/${created.body.id}`)).body;
      expect({ state: waiting.state, why: waiting.waiting_reason }).toEqual({
        state: 1,
        why: `every alive proplet is cordoned (${listed[0]!.name}): it runs when one is uncordoned or joins`,
      });
      // A viewer may not cordon (a change: admins only).
      const viewer = await http(`${s.url}/tokens`, "POST", { name: "ro", role: "viewer" });
      const refused = await fetch(`${s.url}/proplets/cordon-one/uncordon`, {
        method: "POST",
        headers: { authorization: `Bearer ${viewer.body.token}` },
      });
      expect(refused.status).toBe(403);
      expect((await run(["proplets", "uncordon", "cordon-one"], env())).code).toBe(0);
      const done = await untilEnded(s.url, created.body.id, "the task to run after uncordon");
      expect({ state: done.state, results: done.results, on: done.proplet_id }).toEqual({
        state: 3,
        results: "3",
        on: "cordon-one",
      });
    } finally {
      await p.kill("SIGKILL");
      await s.kill("SIGKILL");
    }
  }, 90_000);

  test("drain waits for the running task to end, then the proplet takes no work; --force moves what runs", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const one = await spawnProplet(s, "drain-one");
    const procs = [one];
    try {
      await untilAlive(s.url, "drain-one", 20_000);
      const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
      // A task running ~2 s: drain returns once it has ended, not before.
      const short = await startRunning(s.url, { name: "ticker", file: b64("ticker"), inputs: [20, 100], daemon: true });
      const drained = await run(["proplets", "drain", "drain-one", "--timeout", "60"], env);
      expect({ code: drained.code, out: drained.stdout }).toEqual({
        code: 0,
        out: "proplet drain-one drained: cordoned, running nothing\n",
      });
      expect(drained.stderr).toContain("waiting for 1 task(s) on drain-one to end");
      expect((await http(`${s.url}/tasks/${short.body.id}`)).body.state).toBe(3);
      // Drained: a new task waits.
      const next = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [2, 2] });
      await http(`${s.url}/tasks/${next.body.id}/start`, "POST");
      await Bun.sleep(500);
      expect((await http(`${s.url}/tasks/${next.body.id}`)).body.waiting_reason).toContain("cordoned");
      // --force: a long task on a second proplet is moved to the first once it is uncordoned.
      const two = await spawnProplet(s, "drain-two");
      procs.push(two);
      await untilAlive(s.url, "drain-two", 20_000);
      await untilEnded(s.url, next.body.id, "the waiting task to run on the new proplet");
      const long = await startRunning(s.url, {
        name: "ticker",
        file: b64("ticker"),
        inputs: [600, 100],
        daemon: true,
        max_retries: 1,
      });
      expect((await http(`${s.url}/tasks/${long.body.id}`)).body.proplet_id).toBe("drain-two");
      const timedOut = await run(["proplets", "drain", "drain-two", "--timeout", "1"], env);
      expect(timedOut.code).toBe(1);
      expect(timedOut.stderr).toContain(
        "still runs 1 task(s) after 1 s; it stays cordoned (--force stops them there: they run elsewhere while retries last)",
      );
      expect((await run(["proplets", "uncordon", "drain-one"], env)).code).toBe(0);
      const forced = await run(["proplets", "drain", "drain-two", "--timeout", "1", "--force"], env);
      expect(forced.code).toBe(0);
      // Said as it is: stopped there, run again elsewhere while retries last (it said "moving" for tasks it ended).
      expect(forced.stderr).toContain(
        "stopping 1 task(s) on drain-two: each runs again elsewhere while it has retries left",
      );
      const moved = await until("the task to run again on drain-one", async () => {
        const t = (await http(`${s.url}/tasks/${long.body.id}`)).body;
        return t.state === 2 && t.proplet_id === "drain-one" ? t : undefined;
      });
      expect(moved.attempt).toBe(2);
    } finally {
      for (const p of procs) await p.kill("SIGKILL");
      await s.kill("SIGKILL");
    }
  }, 120_000);
  test("tasks create --start --wait that no proplet can take times out saying why it did not start", async () => {
    // Before: "task ID still Scheduled after 2s", and on a terminal silence until then; serve knew the reason.
    const s = await startServe({ extra: ["--no-local-proplet"] });
    try {
      const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
      const args = ["tasks", "create", "add", "--example", "add", "--inputs", "1,2", "--start", "--wait"];
      const r = await run([...args, "--wait-timeout", "2"], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("still Scheduled after 2s: not started: no proplet is alive; it runs when one joins");
    } finally {
      await s.kill("SIGKILL");
    }
  }, 60_000);
  test("a waiting reason names a cordoned proplet as the operator knows it: by name, with its id when pinned", async () => {
    // serve's local proplet has a made-up id and a readable name: the reason showed the id, which the operator who
    // cordoned it by name had never seen.
    const s = await startServe();
    try {
      const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
      const [local] = (await http(`${s.url}/proplets`)).body.proplets as { id: string; name: string }[];
      expect(local!.name).not.toBe(local!.id);
      expect((await run(["proplets", "cordon", local!.name], env)).code).toBe(0);
      const why = async (body: Record<string, unknown>) => {
        const made = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2], ...body });
        expect((await http(`${s.url}/tasks/${made.body.id}/start`, "POST")).status).toBe(200);
        return (await http(`${s.url}/tasks/${made.body.id}`)).body.waiting_reason;
      };
      expect(await why({})).toBe(
        `every alive proplet is cordoned (${local!.name}): it runs when one is uncordoned or joins`,
      );
      expect(await why({ proplet_id: local!.name })).toBe(
        `its proplet ${local!.name} (${local!.id}) is cordoned: it runs once the proplet is uncordoned`,
      );
    } finally {
      await s.kill("SIGKILL");
    }
  }, 60_000);
  test("proplets delete of a live proplet says ok, and that it comes back at its next heartbeat", async () => {
    // Before: "ok", and the proplet was listed again a few seconds later, nothing said.
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const p = await spawnProplet(s, "still-here", { PROPLET_LIVELINESS_INTERVAL: "1" });
    try {
      await untilAlive(s.url, "still-here", 20_000);
      const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
      const r = await run(["proplets", "delete", "still-here"], env);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "ok\n" });
      expect(r.stderr).toContain("is alive: it is back at its next heartbeat");
      expect(r.stderr).toContain("propeller proplets revoke");
      await untilAlive(s.url, "still-here", 10_000);
    } finally {
      await p.kill("SIGKILL");
      await s.kill("SIGKILL");
    }
  }, 60_000);
});
