import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  cli,
  envLines,
  FIXTURES,
  http,
  type Proc,
  runTask,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
  untilEnded,
} from "../helpers.ts";

// Names and ids as a user and upstream expect (issue 27, item 11), with real processes: the name given to a
// proplet's identity is its name everywhere and is taken wherever a proplet id is; a workflow's task ids are the
// client's, as upstream, and `--fresh` makes a new copy of a reusable file.

let s: Serve;
const procs: Proc[] = [];
let env: Record<string, string>;

beforeAll(async () => {
  // serve's local proplet stays: a task pinned by name must go to edge-1 although another proplet is free.
  s = await startServe();
  env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
});

afterAll(async () => {
  for (const p of procs) await p.kill();
  await s?.kill();
});

describe("a proplet's name", () => {
  test("proplets add --name edge-1: listed, found, pinned and an FL participant by that name; a second edge-1 is refused", async () => {
    const added = cli(["proplets", "add", "--name", "edge-1"], env);
    expect(added).toMatchObject({ code: 0, stderr: "" });
    const vars = envLines(added.stdout);
    const id = vars.PROPLET_ENTITY_ID!;
    expect(id).toBeTruthy();
    // The gateway's FL URL as the CLI reached serve: the proplet's FL requests go there with its key (a proplet
    // started from these lines alone got 401 for its first model and its rounds failed).
    expect(vars.PROPLET_FL_URL).toBe(`${s.url}/fl`);
    // Followed by name from before it first registers.
    const watch = spawnPropeller(["watch", "--types", "proplet", "--proplet", "edge-1", "--json"], env);
    procs.push(watch);
    await Bun.sleep(500); // subscribed (the stream opens before the proplet starts)
    procs.push(
      spawnPropeller(["proplet"], {
        PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
        ...vars,
      }),
    );
    await untilAlive(s.url, "edge-1", 15_000);
    const up = await until("the watcher to see edge-1 up", () =>
      watch
        .output()
        .split("\n")
        .find((l) => l.includes('"alive":true')),
    );
    expect(JSON.parse(up)).toMatchObject({ type: "proplet", proplet_id: id, name: "edge-1", alive: true });

    // Everywhere it is shown: the REST listing, one proplet by its name, the CLI's table.
    const listed = (await http(`${s.url}/proplets`)).body.proplets as { id: string; name: string }[];
    expect(listed.find((p) => p.id === id)?.name).toBe("edge-1");
    expect((await http(`${s.url}/proplets/edge-1`)).body).toMatchObject({ id, name: "edge-1", alive: true });
    const table = cli(["proplets", "list"], env).stdout.split("\n");
    expect(table.find((l) => l.startsWith(id))).toContain("edge-1");
    expect((await http(`${s.url}/proplets/edge-2`)).body.error).toBe(
      "proplet edge-2 not found (no proplet has that id or name; did you mean edge-1?)",
    );

    // Pinned by name: three runs, each on edge-1 while the local proplet is free (placement alternates otherwise).
    const ran: string[] = [];
    for (const n of [1, 2, 3]) {
      const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [n, 1], proplet_id: "edge-1" });
      expect(t).toMatchObject({ status: "Completed", results: String(n + 1), proplet_id: id, proplet_name: "edge-1" });
      ran.push(t.id);
    }
    // Where tasks ran, as `tasks list` shows it: by the proplet's name.
    const tasks = cli(["tasks", "list"], env).stdout.split("\n");
    for (const t of ran) expect(tasks.find((l) => l.startsWith(t))).toContain("edge-1");

    // A second identity named edge-1 is refused, naming the holder; nothing was created.
    const dup = cli(["proplets", "add", "--name", "edge-1"], env);
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toContain(`name edge-1 is taken by proplet ${id}`);
    const entities = (await http(`${s.url}/entities?kind=proplet`)).body.entities as { name: string }[];
    expect(entities.filter((e) => e.name === "edge-1")).toHaveLength(1);

    // An FL experiment with edge-1 as its participant: accepted, its round task pinned to edge-1's id.
    const fl = cli(
      [
        ...["fl", "configure", "--experiment-id", "names", "--participants", "edge-1"],
        ...["--task-file", join(FIXTURES, "spin.wasm"), "--timeout-s", "60"],
      ],
      env,
    );
    expect(fl).toMatchObject({ code: 0, stderr: "" });
    const e = (await http(`${s.url}/fl/experiments/names`)).body;
    expect(e).toMatchObject({ participants: [id], participant_names: ["edge-1"] });
    expect(cli(["fl", "status", "names"], env).stdout).toContain("participants edge-1");
    const round = (await http(`${s.url}/tasks/${e.round_list[0].tasks[id]}`)).body;
    expect(round.proplet_id).toBe(id);
    // Stopped from the CLI (there was only POST /fl/experiments/{id}/stop); its round's task says why it ended.
    expect(cli(["fl", "stop", "names"], env)).toMatchObject({ code: 0, stdout: "experiment names: stopped\n" });
    const ended = await until("the round's task to end", async () => {
      const t = (await http(`${s.url}/tasks/${round.id}`)).body;
      return t.state >= 3 && t;
    });
    expect(ended.error).toStartWith(`round ${e.round_list[0].round_id} ended stopped`);
  }, 60_000);
});

describe("a workflow's task ids", () => {
  test("kept as the client gave them; the same file again is 409 naming the id; --fresh runs it under new ids", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "add.wasm"), Buffer.from(b64("add"), "base64"));
    const file = join(dir, "wf.json");
    writeFileSync(
      file,
      JSON.stringify({
        tasks: [
          { id: "a", name: "add", file_path: "add.wasm", inputs: [1, 2] },
          { id: "b", name: "add", file_path: "add.wasm", inputs: [3, 4], depends_on: ["a"] },
        ],
      }),
    );
    const made = cli(["workflows", "create", file, "--start", "--json"], env);
    expect(made).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(made.stdout).tasks.map((t: { id: string }) => t.id)).toEqual(["a", "b"]);
    // An upstream client polls its own ids.
    const b = await untilEnded(s.url, "b", "task b to end", 15_000);
    expect(b).toMatchObject({ id: "b", status: "Completed", results: "7", depends_on: ["a"] });
    expect((await http(`${s.url}/tasks/a`)).body).toMatchObject({ id: "a", status: "Completed", results: "3" });

    const again = cli(["workflows", "create", file], env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("task id a already exists");
    expect((await http(`${s.url}/workflows`)).body.total).toBe(1);

    const fresh = cli(["workflows", "create", "--fresh", file, "--start", "--json"], env);
    expect(fresh).toMatchObject({ code: 0, stderr: "" });
    const w = JSON.parse(fresh.stdout).workflow_id as string;
    const done = await until(
      "the fresh copy to complete",
      async () => {
        const v = (await http(`${s.url}/workflows/${w}`)).body;
        return v.status === "Completed" ? v : undefined;
      },
      15_000,
    );
    expect(done.tasks).toMatchObject([
      { id: `${w}.a`, local_id: "a", results: "3" },
      { id: `${w}.b`, local_id: "b", depends_on: [`${w}.a`], results: "7" },
    ]);
    // The first workflow's tasks are untouched.
    expect((await http(`${s.url}/tasks/a`)).body.workflow_id).not.toBe(w);
  }, 60_000);
});
