import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { run } from "../cli-run.ts";
import {
  authHeader,
  b64,
  cpuSeconds,
  fixture,
  http,
  identity,
  propletEnv,
  runTask,
  type Serve,
  spawnPropeller,
  spawnProplet,
  startRunning,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// A user's view: a real `propeller serve` process (embedded broker, SQLite file, local proplet), real proplet
// processes, the CLI, and plain HTTP.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--liveliness-interval", "1"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const cli = (args: string[]) => run(args, { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });

describe("serve with its local proplet", () => {
  test("the local proplet registers and is alive", async () => {
    const page = (await http(`${s.url}/proplets`)).body;
    expect(page.total).toBe(1);
    expect(page.proplets[0]).toMatchObject({
      alive: true,
      task_count: 0,
      metadata: { wasm_runtime: "propeller-inprocess", os: "linux" },
    });
  });

  test("CLI: tasks create add --inputs 10,20 --start --wait prints 30", async () => {
    const r = await cli([
      "tasks",
      "create",
      "add",
      "--file",
      "test/fixtures/build/add.wasm",
      "--inputs",
      "10,20",
      "--start",
      "--wait",
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("30\n");
    expect(r.code).toBe(0);
  });

  test("REST: a WASI command greets with its env and argv", async () => {
    const t = await runTask(s.url, { name: "hello", file: b64("hello"), inputs: ["Ada"], env: { GREETING: "Hello" } });
    expect(t).toMatchObject({ state: 3, status: "Completed", results: "Hello Ada from hello\n" });
    expect(t.file).toContain("<REDACTED>");
    expect((await http(`${s.url}/tasks/${t.id}/results`)).body).toEqual({ results: "Hello Ada from hello\n" });
  });

  test("a failing command ends Failed with its exit code and stderr; the CLI exits non-zero", async () => {
    const t = await runTask(s.url, { name: "fail", file: b64("fail") });
    expect(t).toMatchObject({ state: 4, status: "Failed", error: "exit code 3: something went wrong" });
    const r = await cli(["tasks", "create", "fail", "--file", "test/fixtures/build/fail.wasm", "--start", "--wait"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Failed: exit code 3: something went wrong");
  });

  test("stop ends an infinite loop within a second, frees the CPU and reports it failed", async () => {
    const c = await startRunning(s.url, { name: "spin", file: b64("spin") }, "the spin task to run");
    await Bun.sleep(300);
    const t0 = Date.now();
    expect((await http(`${s.url}/tasks/${c.body.id}/stop`, "POST")).body).toEqual({ stopped: true });
    const t = await until("the stopped task to end", async () => {
      const v = (await http(`${s.url}/tasks/${c.body.id}`)).body;
      return v.state === 6 ? v : undefined;
    });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(t).toMatchObject({ status: "Interrupted", error: "stopped by user" });
    const cpu0 = cpuSeconds(s.proc.pid);
    await Bun.sleep(1000);
    expect(cpuSeconds(s.proc.pid) - cpu0).toBeLessThan(0.3); // a spinning worker would burn ~1 s
    expect((await http(`${s.url}/proplets`)).body.proplets[0].task_count).toBe(0);
  });

  test("heartbeats continue while a task keeps a worker busy", async () => {
    const c = await http(`${s.url}/tasks`, "POST", { name: "spin", file: b64("spin") });
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    const first = (await http(`${s.url}/proplets`)).body.proplets[0].last_alive_at;
    const later = await until(
      "a new heartbeat",
      async () => {
        const p = (await http(`${s.url}/proplets`)).body.proplets[0];
        return p.last_alive_at !== first ? p : undefined;
      },
      3000,
    );
    expect(later.alive).toBe(true);
    await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
  });

  test("a second proplet process joins and runs a task pinned to it", async () => {
    const p = await spawnProplet(s, "edge-proplet-2", {
      PROPLET_LIVELINESS_INTERVAL: "1",
    });
    try {
      const view = await until("the second proplet to be alive", async () => {
        const r = await http(`${s.url}/proplets/edge-proplet-2`);
        return r.status === 200 && r.body.alive ? r.body : undefined;
      });
      expect(view.metadata.proplet_version).toBeTruthy();
      const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3], proplet_id: "edge-proplet-2" });
      expect(t).toMatchObject({ state: 3, results: "5", proplet_id: "edge-proplet-2" });
      expect(p.output()).toContain(`task running (add) task_id=${t.id}`);
      // Graceful stop says offline at once.
      await p.kill("SIGTERM");
      const gone = await until(
        "the proplet to be shown not alive",
        async () => {
          const r = (await http(`${s.url}/proplets/edge-proplet-2`)).body;
          return r.alive === false ? r : undefined;
        },
        3000,
      );
      expect(gone.alive).toBe(false);
      // A task pinned to a proplet that is away waits in the queue instead of failing.
      const pinned = await http(`${s.url}/tasks`, "POST", {
        name: "add",
        file: b64("add"),
        inputs: [1, 1],
        proplet_id: "edge-proplet-2",
      });
      const queued = await http(`${s.url}/tasks/${pinned.body.id}/start`, "POST");
      expect(queued.body).toMatchObject({ started: true, status: "Scheduled" });
      await Bun.sleep(300);
      expect((await http(`${s.url}/tasks/${pinned.body.id}`)).body.state).toBe(1);
      await http(`${s.url}/tasks/${pinned.body.id}/stop`, "POST");
    } finally {
      await p.kill("SIGKILL");
    }
  });

  test("round robin spreads unpinned tasks over alive proplets", async () => {
    const p = spawnPropeller(["proplet"], {
      PROPLET_MQTT_ADDRESS: `127.0.0.1:${s.mqttPort}`,
      ...(await propletEnv(s.url, "rr-proplet")),
      PROPLET_LIVELINESS_INTERVAL: "1",
    });
    try {
      await untilAlive(s.url, "rr-proplet");
      const ran = new Set<string>();
      for (let i = 0; i < 4; i++)
        ran.add((await runTask(s.url, { name: "add", file: b64("add"), inputs: [i, 1] })).proplet_id);
      expect(ran.size).toBe(2);
    } finally {
      await p.kill("SIGKILL");
    }
  });

  test("a Last Will marks a proplet killed with -9 not alive", async () => {
    const p = await spawnProplet(s, "doomed", {
      PROPLET_LIVELINESS_INTERVAL: "1",
    });
    await untilAlive(s.url, "doomed");
    await p.kill("SIGKILL");
    // aedes sends the Will when it notices the socket closed.
    await until("doomed not alive", async () => (await http(`${s.url}/proplets/doomed`)).body?.alive === false, 2000);
  });
});

describe("upstream compatibility", () => {
  test("create ignores a client id and state, returns Location and upstream defaults", async () => {
    const res = await fetch(`${s.url}/tasks`, {
      method: "POST",
      headers: { ...authHeader(s.url), "content-type": "application/json" },
      body: JSON.stringify({ name: "t", id: "x", state: 3 }),
    });
    expect(res.status).toBe(201);
    const t = (await res.json()) as { id: string };
    expect(t.id).not.toBe("x");
    expect(res.headers.get("location")).toBe(`/tasks/${t.id}`);
    expect(t).toMatchObject({
      state: 0,
      status: "Pending",
      kind: "standard",
      priority: 50,
      cli_args: null,
      daemon: false,
      encrypted: false,
      start_time: "0001-01-01T00:00:00Z",
      finish_time: "0001-01-01T00:00:00Z",
      next_run: "0001-01-01T00:00:00Z",
    });
  });
});

describe("bad input", () => {
  test("bad JSON, missing fields and wrong types get 400 naming the field", async () => {
    const bad = await http(`${s.url}/tasks`, "POST", "{not json");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("not valid JSON");
    const missing = await http(`${s.url}/tasks`, "POST", { inputs: [true] });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toContain("name");
    expect(missing.body.error).toContain("inputs.0");
    const prio = await http(`${s.url}/tasks`, "POST", { name: "x", priority: 500 });
    expect(prio.status).toBe(400);
    expect(prio.body.error).toContain("priority");
    const type = await fetch(`${s.url}/tasks`, {
      method: "POST",
      body: '{"name":"x"}',
      headers: { ...authHeader(s.url), "content-type": "text/plain" },
    });
    expect(type.status).toBe(400);
    const page = await http(`${s.url}/tasks?limit=abc`);
    expect(page.status).toBe(400);
    expect(page.body.error).toContain("limit");
    for (const bad of ["http://", "http:/x"]) {
      const r = await http(`${s.url}/tasks`, "POST", { name: "x", image_url: bad });
      expect(r).toEqual({ status: 400, body: { error: `image_url: ${JSON.stringify(bad)} is not a URL with a host` } });
    }
    // A latent broadcast, made by a PUT: its parts ran as plain tasks.
    const latent = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), latent: true });
    const both = await http(`${s.url}/tasks/${latent.body.id}`, "PUT", { broadcast: true });
    expect(both).toEqual({ status: 400, body: { error: "broadcast: a latent task cannot be a broadcast" } });
    const clone = await http(`${s.url}/tasks/${latent.body.id}/clone`, "POST", { max_retry: 2 });
    expect(clone).toEqual({ status: 400, body: { error: "max_retry: not a field (did you mean max_retries?)" } });
    // An image_url that is neither a URL nor an OCI reference: its run failed "not allowed" at the proxy.
    const image = await http(`${s.url}/tasks`, "POST", { name: "x", image_url: "nope-registry/foo:1" });
    expect(image).toEqual({
      status: 400,
      body: {
        error:
          'image_url: "nope-registry/foo:1": the first part must be a registry host (e.g. registry.example.com/repo:tag), or an http(s):// URL',
      },
    });
  });

  test("a body over 100 MiB gets 413 and the server keeps running", async () => {
    const big = new Uint8Array(100 * 1024 * 1024 + 10).fill(0x20);
    const r = await fetch(`${s.url}/tasks`, {
      method: "POST",
      body: big,
      headers: { ...authHeader(s.url), "content-type": "application/json" },
    });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: string }).error).toContain("100 MiB");
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  test("unknown ids get 404", async () => {
    for (const path of ["/tasks/nope", "/tasks/nope/results", "/proplets/nope"]) {
      const r = await http(`${s.url}${path}`);
      expect(r.status).toBe(404);
      expect(r.body.error).toContain("nope");
    }
    expect((await http(`${s.url}/tasks/nope/start`, "POST")).status).toBe(404);
    expect((await http(`${s.url}/tasks/nope`, "DELETE")).status).toBe(404);
  });

  test("a task whose module is not valid Wasm fails with a reason", async () => {
    const junk = Buffer.concat([Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), Buffer.from("garbage!")]).toString(
      "base64",
    );
    const t = await runTask(s.url, { name: "junk", file: junk });
    expect(t.state).toBe(4);
    expect(t.error).toBeTruthy();
  });

  test("malformed MQTT payloads are dropped and the process keeps running", async () => {
    // A proplet with valid credentials that sends payloads of the wrong shape about itself: the broker lets them
    // through (they name the sender), the manager's schemas drop them.
    const login = await identity(s.url, "proplet", "vandal");
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "vandal", ...login });
    for (const topic of ["create", "alive", "results"]) {
      await c.publishAsync(
        `m/default/c/default/control/proplet/${topic}`,
        JSON.stringify({ proplet_id: "vandal", metadata: "none", status: 7, task_id: [] }),
      );
    }
    await c.endAsync();
    // Not JSON at all: the broker refuses it and closes the connection.
    const d = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: "vandal", ...login });
    const closed = new Promise<void>((resolve) => d.once("close", () => resolve()));
    d.publish("m/default/c/default/control/proplet/alive", "this is not json");
    await closed;
    d.end(true);
    const t = await runTask(s.url, { name: "add", file: b64("add"), inputs: [20, 22] });
    expect(t.results).toBe("42");
    expect(s.output()).toContain("dropped malformed message");
  });
});

describe("other REST operations", () => {
  test("update, upload, list, delete", async () => {
    const c = await http(`${s.url}/tasks`, "POST", { name: "add", inputs: [1, 2] });
    expect(c.status).toBe(201);
    const noModule = await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    expect(noModule.status).toBe(400);
    const form = new FormData();
    form.set("file", new Blob([fixture("add")]), "add.wasm");
    const up = await fetch(`${s.url}/tasks/${c.body.id}/upload`, {
      method: "PUT",
      body: form,
      headers: authHeader(s.url),
    });
    expect(up.status).toBe(200);
    const wrong = new FormData();
    wrong.set("file", new Blob([fixture("add")]), "add.txt");
    expect(
      (await fetch(`${s.url}/tasks/${c.body.id}/upload`, { method: "PUT", body: wrong, headers: authHeader(s.url) }))
        .status,
    ).toBe(400);
    const u = await http(`${s.url}/tasks/${c.body.id}`, "PUT", { inputs: [40, 2] });
    expect(u.body.inputs).toEqual(["40", "2"]);
    expect(u.body.name).toBe("add");
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
    const done = await until("task done", async () =>
      (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 3 ? true : undefined,
    );
    expect(done).toBe(true);
    const list = (await http(`${s.url}/tasks?limit=2`)).body;
    expect(list).toMatchObject({ offset: 0, limit: 2 });
    expect(list.tasks.length).toBe(2);
    expect(list.total).toBeGreaterThan(2);
    expect(list.tasks[0].id).toBe(c.body.id); // newest first
    expect((await http(`${s.url}/tasks/${c.body.id}`, "DELETE")).status).toBe(204);
    expect((await http(`${s.url}/tasks/${c.body.id}`)).status).toBe(404);
  });

  test("MQTT over WebSocket at /mqtt reaches the embedded broker", async () => {
    const login = await identity(s.url, "proplet", "ws-proplet");
    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${s.httpPort}/mqtt`, { clientId: "ws-proplet", ...login });
    await ws.publishAsync(
      "m/default/c/default/control/proplet/create",
      JSON.stringify({ proplet_id: "ws-proplet", metadata: {} }),
    );
    // Heartbeats as a real proplet sends them (a QoS 0 announcement alone was once not seen in a full CI run).
    const beat = setInterval(() => {
      const alive = JSON.stringify({ proplet_id: "ws-proplet", status: "alive" });
      ws.publish("m/default/c/default/control/proplet/alive", alive);
    }, 250);
    try {
      await untilAlive(s.url, "ws-proplet");
    } finally {
      clearInterval(beat);
      await ws.endAsync();
    }
  });

  test("the console page is served at /", async () => {
    const r = await fetch(`${s.url}/`);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain("<title>Propeller</title>");
  });
});

describe("storage", () => {
  test("tasks survive kill -9 and restart on the same data dir", async () => {
    const dataDir = tempDir();
    const a = await startServe({ dataDir });
    const t = await runTask(a.url, { name: "add", file: b64("add"), inputs: [5, 6] });
    await a.kill("SIGKILL");
    const b = await startServe({ dataDir });
    try {
      const again = (await http(`${b.url}/tasks/${t.id}`)).body;
      expect(again).toMatchObject({ id: t.id, state: 3, results: "11" });
      // The local proplet keeps its id across restarts.
      const p = (await http(`${b.url}/proplets`)).body.proplets;
      expect(p.map((x: { id: string }) => x.id)).toContain(t.proplet_id);
    } finally {
      await b.kill("SIGKILL");
    }
  });

  test("--no-local-proplet runs no proplet", async () => {
    const n = await startServe({ extra: ["--no-local-proplet"] });
    try {
      await Bun.sleep(300);
      expect((await http(`${n.url}/proplets`)).body.total).toBe(0);
      // With no proplet the task waits Scheduled; the first proplet to join runs it.
      const c = await http(`${n.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [2, 2] });
      const r = await http(`${n.url}/tasks/${c.body.id}/start`, "POST");
      expect(r.body).toMatchObject({ started: true, status: "Scheduled" });
      const p = await spawnProplet(n, "first-joiner");
      try {
        const done = await until("the queued task to run", async () => {
          const t = (await http(`${n.url}/tasks/${c.body.id}`)).body;
          return t.state === 3 ? t : undefined;
        });
        expect(done.results).toBe("4");
      } finally {
        await p.kill("SIGKILL");
      }
    } finally {
      await n.kill("SIGKILL");
    }
  });
});
