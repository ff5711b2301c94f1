import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { b64, http, type Serve, startServe } from "../helpers.ts";

// Hostile inputs to the REST API of a real serve: a viewer token fishing for env values, YAML aliases that slip
// past a name check, numbers that overflow the storage's integers, and prototype keys in JSON objects.

let s: Serve;
let viewer: string;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  const t = await http(`${s.url}/tokens`, "POST", { name: "eyes", role: "viewer" });
  viewer = t.body.token;
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const SECRET = "s3cret-value-4711";
const env = { API_KEY: SECRET, MODE: "fast" };

async function as(token: string, path: string) {
  const res = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text() };
}

async function yaml(path: string, text: string) {
  const res = await fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token}`, "content-type": "application/yaml" },
    body: text,
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function healthy() {
  expect((await fetch(`${s.url}/health`)).status).toBe(200);
}

describe("a viewer token and env", () => {
  test("viewers see env keys with values hidden in tasks, jobs and workflows; admins see the values", async () => {
    const task = (await http(`${s.url}/tasks`, "POST", { name: "keyed", file: b64("add"), env })).body;
    const job = (await http(`${s.url}/jobs`, "POST", { name: "j", tasks: [{ name: "a", file: b64("add"), env }] }))
      .body;
    const wf = (await http(`${s.url}/workflows`, "POST", { tasks: [{ id: "a", name: "a", file: b64("add"), env }] }))
      .body;
    const paths = [
      "/tasks",
      `/tasks/${task.id}`,
      `/tasks/${task.id}/runs`,
      "/jobs",
      `/jobs/${job.job_id}`,
      "/workflows",
      `/workflows/${wf.workflow_id}`,
      "/stats",
    ];
    for (const path of paths) {
      const r = await as(viewer, path);
      expect(r.status).toBe(200);
      expect(r.text).not.toContain(SECRET);
    }
    const seen = JSON.parse((await as(viewer, `/tasks/${task.id}`)).text);
    expect(seen.env).toEqual({ API_KEY: "***", MODE: "***" });
    expect(JSON.parse((await as(viewer, `/jobs/${job.job_id}`)).text).tasks[0].env).toEqual({
      API_KEY: "***",
      MODE: "***",
    });
    expect(JSON.parse((await as(s.token!, `/tasks/${task.id}`)).text).env).toEqual(env);
  });

  test("env given as runtime options in cli_args is hidden from viewers too (both spellings)", async () => {
    const cli_args = [`--env=API_KEY=${SECRET}`, "--env", `TOKEN=${SECRET}`, "--invoke", "add"];
    const task = (await http(`${s.url}/tasks`, "POST", { name: "opts", file: b64("add"), cli_args })).body;
    for (const path of ["/tasks", `/tasks/${task.id}`]) expect((await as(viewer, path)).text).not.toContain(SECRET);
    expect(JSON.parse((await as(viewer, `/tasks/${task.id}`)).text).cli_args).toEqual([
      "--env=API_KEY=***",
      "--env",
      "TOKEN=***",
      "--invoke",
      "add",
    ]);
    expect(JSON.parse((await as(s.token!, `/tasks/${task.id}`)).text).cli_args).toEqual(cli_args);
  });

  test("the live stream a viewer follows carries no env value while tasks change", async () => {
    const ctl = new AbortController();
    const res = await fetch(`${s.url}/events`, { headers: { authorization: `Bearer ${viewer}` }, signal: ctl.signal });
    const reader = res.body!.getReader();
    let text = "";
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })();
    const t = (await http(`${s.url}/tasks`, "POST", { name: "streamed", file: b64("add"), env })).body;
    await http(`${s.url}/tasks/${t.id}/start`, "POST");
    await http(`${s.url}/tasks/${t.id}/stop`, "POST");
    await Bun.sleep(300);
    ctl.abort();
    await reading;
    expect(text).toContain(t.id);
    expect(text).not.toContain(SECRET);
  });
});

describe("YAML", () => {
  test("aliases whatever their name (*.l0) are refused with 400, before and after parsing", async () => {
    const aliased = [
      `name: j\ntasks:\n  - name: a\n    file: ${b64("add")}\n    env: &.l0 {A: x}\n  - name: b\n    file: ${b64("add")}\n    env: *.l0\n`,
      `name: j\ntasks:\n  - &.x {name: a, file: ${b64("add")}}\n  - *.x\n`,
      `name: j\ntasks: [{name: a, file: ${b64("add")}, inputs: [&-1 "1", *-1]}]\n`,
    ];
    for (const text of aliased) {
      const r = await yaml("/jobs", text);
      expect(r.status).toBe(400);
      expect(r.body.error).toContain("anchors and aliases are not accepted");
    }
    // A laugh bomb of aliases named like `.l0`: refused, and serve does not walk it.
    let bomb = "name: j\nl0: &.l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (let i = 1; i < 9; i++)
      bomb += `l${i}: &.l${i} [${Array(10)
        .fill(`*.l${i - 1}`)
        .join(", ")}]\n`;
    bomb += `tasks: [{name: a, file: ${b64("add")}, inputs: *.l8}]\n`;
    expect((await yaml("/workflows", bomb)).status).toBe(400);
    // Text that only looks like an alias is fine: a cron expression (a job's task takes none: in its env), a glob in
    // quotes.
    const fine = `name: j\ntasks:\n  - name: a\n    file: ${b64("add")}\n    env:\n      EVERY: 0 */5 * * *\n    cli_args: ["*.wasm"]\n`;
    const ok = await yaml("/jobs", fine);
    expect(ok.status).toBe(201);
    expect(ok.body.tasks[0].env).toEqual({ EVERY: "0 */5 * * *" });
    await healthy();
  });
});

describe("numbers and keys in queries and bodies", () => {
  test("offset=1e20 and other out-of-range pages are 400 naming the field on every listing; no stack in the log", async () => {
    const task = (await http(`${s.url}/tasks`, "POST", { name: "paged", file: b64("add") })).body;
    const lists = [
      "/tasks",
      "/jobs",
      "/workflows",
      "/proplets",
      `/tasks/${task.id}/runs`,
      `/tasks/${task.id}/metrics`,
      "/proplets/p/metrics",
      "/proplets/p/alive-history",
    ];
    const bad: [string, string][] = [
      ["offset=1e20", "offset"],
      ["offset=100000000000000000000", "offset"],
      ["offset=9007199254740993", "offset"],
      ["offset=-1", "offset"],
      ["limit=1e20", "limit"],
      ["limit=0", "limit"],
      ["offset=1&offset=2", "offset"],
    ];
    for (const path of lists) {
      for (const [q, field] of bad) {
        const r = await http(`${s.url}${path}?${q}`);
        expect(r.status).toBe(400);
        expect(r.body.error).toContain(field);
      }
    }
    await healthy();
    expect(s.output()).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expect(s.output()).not.toContain("datatype mismatch");
  });

  test("__proto__, constructor and prototype keys, and runaway sampling numbers, are refused with 400 naming the field", async () => {
    const filters = ['{"__proto__":"x"}', '{"constructor":"x"}', '{"a":"1","a":"2"}'];
    for (const f of filters) {
      const r = await http(`${s.url}/tasks?metadata=${encodeURIComponent(f)}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toStartWith("metadata:");
    }
    const add = b64("add");
    const bodies: [string, string][] = [
      [`{"name":"x","file":"${add}","metadata":{"__proto__":{"admin":true}}}`, "metadata.__proto__"],
      [`{"name":"x","file":"${add}","env":{"__proto__":"y"}}`, "env.__proto__"],
      [`{"name":"x","file":"${add}","env":{"constructor":"y"}}`, "env.constructor"],
      [`{"name":"x","file":"${add}","requirements":{"labels":{"prototype":"y"}}}`, "requirements.labels.prototype"],
      [`{"__proto__":{"name":"x"},"file":"${add}"}`, "__proto__"],
    ];
    const before = (await http(`${s.url}/tasks`)).body.total;
    for (const [body, field] of bodies) {
      const r = await http(`${s.url}/tasks`, "POST", body);
      expect(r.status).toBe(400);
      expect(r.body.error).toStartWith(`${field}:`);
    }
    // Numbers a proplet would obey: metrics sampled every microsecond, or a timer overflowing to 1 ms.
    const sampling: [unknown, string][] = [
      [{ interval: 0.000001 }, "monitoring_profile.interval"],
      [{ interval: 1e300 }, "monitoring_profile.interval"],
      [{ interval: 1, history_size: 1e9 }, "monitoring_profile.history_size"],
    ];
    for (const [monitoring_profile, field] of sampling) {
      const r = await http(`${s.url}/tasks`, "POST", { name: "x", file: add, monitoring_profile });
      expect(r.status).toBe(400);
      expect(r.body.error).toStartWith(`${field}:`);
    }
    expect((await http(`${s.url}/tasks`)).body.total).toBe(before);
    const yamlProto = await yaml(
      "/jobs",
      `name: j\ntasks:\n  - name: a\n    file: ${add}\n    metadata: {__proto__: x}\n`,
    );
    expect(yamlProto.status).toBe(400);
    expect(yamlProto.body.error).toContain("tasks.0.metadata.__proto__");
    await healthy();
  });
});
