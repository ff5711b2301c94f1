import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { b64, cli, MAIN, type Serve, startServe, tokenOf } from "../helpers.ts";
import { startMosquitto } from "../mosquitto.ts";
import { type Postgres, startPostgres } from "../postgres.ts";

// A browser as the attacker's tool: a page of another site posting forms to a serve on loopback, a page whose name
// DNS rebinding pointed at 127.0.0.1 (its requests carry its own Host and Origin), a WebSocket opened from it.
// Played with the exact requests such a browser sends, against real serve processes.

let open: Serve; // --no-auth
let authed: Serve;
beforeAll(async () => {
  [open, authed] = await Promise.all([
    startServe({ extra: ["--no-auth", "--no-local-proplet"] }),
    startServe({ extra: ["--no-local-proplet"] }),
  ]);
});
afterAll(async () => {
  await Promise.all([open?.kill("SIGKILL"), authed?.kill("SIGKILL")]);
});

const EVIL = "http://evil.example";
const task = { name: "victim", file: b64("add"), inputs: [1, 2] };

async function send(s: Serve, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) {
  const res = await fetch(`${s.url}${path}`, {
    ...init,
    headers: { ...(s.token ? { authorization: `Bearer ${s.token}` } : {}), ...init.headers },
  });
  const text = await res.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

async function created(s: Serve): Promise<string> {
  const r = await send(s, "/tasks", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(task),
  });
  expect(r.status).toBe(201);
  return r.body.id;
}

const total = async (s: Serve) => (await send(s, "/tasks")).body.total as number;
const stateOf = async (s: Serve, id: string) => (await send(s, `/tasks/${id}`)).body.state as number;

async function healthy(s: Serve) {
  expect((await send(s, "/health")).status).toBe(200);
}

/** A WebSocket upgrade of /mqtt as a browser sends it, with the Host and Origin the attacker's page has. */
const upgrade = (s: Serve, host: string, origin: string) =>
  fetch(`${s.url}/mqtt`, {
    headers: {
      host,
      origin,
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-protocol": "mqtt",
    },
  });

describe("--no-auth against DNS rebinding", () => {
  test("a request for another name (Host: evil.example) is refused with 421 saying which names serve answers to", async () => {
    for (const host of ["evil.example", `evil.example:${open.httpPort}`, "127.0.0.1.evil.example", "localhost:1"]) {
      const r = await send(open, "/tasks", { headers: { host } });
      expect(r.status).toBe(421);
      expect(r.body.error).toContain("is not a name this serve answers to");
    }
    // What a rebinding page would do next, with the same Host: create and start a task. Nothing happens.
    const before = await total(open);
    const post = await send(open, "/tasks", {
      method: "POST",
      headers: { host: "evil.example", "content-type": "application/json" },
      body: JSON.stringify(task),
    });
    expect(post.status).toBe(421);
    expect(await total(open)).toBe(before);
    // serve's own names, with its port, are answered.
    for (const host of [`localhost:${open.httpPort}`, `127.0.0.1:${open.httpPort}`, `[::1]:${open.httpPort}`]) {
      expect((await send(open, "/tasks", { headers: { host } })).status).toBe(200);
    }
    await healthy(open);
  });

  test("/mqtt refuses a rebinding page's WebSocket (Origin and Host both evil.example)", async () => {
    expect((await upgrade(open, "evil.example", EVIL)).status).toBe(421);
    expect((await upgrade(open, `127.0.0.1:${open.httpPort}`, EVIL)).status).toBe(403);
    expect((await upgrade(open, `127.0.0.1:${open.httpPort}`, open.url)).status).toBe(101);
    await healthy(open);
  });
});

describe("state changes from another site's page", () => {
  test("a form POST (urlencoded, multipart, text/plain) creates no task, with or without an Origin", async () => {
    const before = await total(open);
    const forms: [Record<string, string>, string][] = [
      [{ "content-type": "application/x-www-form-urlencoded", origin: EVIL }, `name=victim&file=${b64("add")}`],
      [{ "content-type": "text/plain", origin: EVIL }, JSON.stringify(task)],
      [{ "content-type": "text/plain;charset=UTF-8" }, JSON.stringify(task)],
      [{ "content-type": "application/x-www-form-urlencoded" }, `{"name":"victim","file":"${b64("add")}"}`],
      [
        { "content-type": "multipart/form-data; boundary=x" },
        `--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n`,
      ],
      // A no-cors fetch of JSON from another page: the type is fine, the Origin is not.
      [{ "content-type": "application/json", origin: EVIL }, JSON.stringify(task)],
      [{ "content-type": "application/json", origin: "null" }, JSON.stringify(task)],
    ];
    for (const [headers, body] of forms) {
      const r = await send(open, "/tasks", { method: "POST", headers, body });
      expect(r.status === 400 || r.status === 403).toBe(true);
      expect(r.body.error).toMatch(/origin|Content-Type must be application\/json/);
    }
    expect(await total(open)).toBe(before);
    await healthy(open);
  });

  test("POST /tasks/{id}/start with no body from a foreign page is refused, and the task does not start", async () => {
    const id = await created(open);
    const attempts: Record<string, string>[] = [
      { origin: EVIL },
      { origin: EVIL, "content-type": "text/plain" },
      { "sec-fetch-site": "cross-site" },
      { "content-type": "application/x-www-form-urlencoded" },
      // <a ping>: a hyperlink's audit POST, body "PING".
      { "content-type": "text/ping", "ping-to": "http://evil.example/" },
    ];
    for (const headers of attempts) {
      const r = await send(open, `/tasks/${id}/start`, { method: "POST", headers });
      expect(r.status === 400 || r.status === 403).toBe(true);
      expect(await stateOf(open, id)).toBe(0);
    }
    for (const path of [`/tasks/${id}`, `/tasks/${id}/stop`]) {
      const r = await send(open, path, {
        method: path.endsWith("stop") ? "POST" : "DELETE",
        headers: { origin: EVIL },
      });
      expect(r.status).toBe(403);
    }
    expect((await send(open, `/tasks/${id}`)).status).toBe(200);
    // serve's own page (its Origin), the console (its header) and clients outside a browser (no Origin) may.
    expect((await send(open, `/tasks/${id}/start`, { method: "POST", headers: { origin: open.url } })).status).toBe(
      200,
    );
    expect(await stateOf(open, id)).toBe(1); // Scheduled: no proplet here to run it
    const console = { origin: EVIL, "x-propeller-console": "1" };
    expect((await send(open, `/tasks/${id}/stop`, { method: "POST", headers: console })).status).toBe(200);
    await healthy(open);
  });

  test("with a token, the CLI and curl -XPOST …/start (no body, no type) still work", async () => {
    const id = await created(authed);
    const run = Bun.spawnSync([
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-XPOST",
      `${authed.url}/tasks/${id}/start`,
      "-H",
      `Authorization: Bearer ${authed.token}`,
    ]);
    expect(run.stdout.toString()).toBe("200");
    expect(await stateOf(authed, id)).toBe(1);
    const stop = cli(["tasks", "stop", id], { PROPELLER_URL: authed.url, PROPELLER_TOKEN: tokenOf(authed.url) });
    expect(stop.code).toBe(0);
    const made = cli(
      [
        "tasks",
        "create",
        "via-cli",
        "--file",
        "test/fixtures/build/add.wasm",
        "--function",
        "add",
        "--start",
        "--json",
      ],
      {
        PROPELLER_URL: authed.url,
        PROPELLER_TOKEN: tokenOf(authed.url),
      },
    );
    expect(made.stderr).toBe("");
    expect(made.code).toBe(0);
    // The cookie-less form post is refused before it could matter, with a token too.
    const form = await send(authed, `/tasks/${id}/start`, { method: "POST", headers: { origin: EVIL } });
    expect(form.status).toBe(403);
    await healthy(authed);
  });

  test("with authentication on, /mqtt checks Origin against serve's configured origins, not the request's Host", async () => {
    // The old check compared Origin with the URL built from Host: both evil.example, so it let the page in.
    const r = await upgrade(authed, "evil.example", EVIL);
    expect(r.status).toBe(403);
    expect(await r.text()).toContain("may not open an MQTT WebSocket");
    expect((await upgrade(authed, `evil.example:${authed.httpPort}`, `${EVIL}:${authed.httpPort}`)).status).toBe(403);
    expect((await upgrade(authed, `127.0.0.1:${authed.httpPort}`, authed.url)).status).toBe(101);
    await healthy(authed);
  });
});

describe("configured origins", () => {
  test("--allowed-origins takes origins only, and says which entry is not one", () => {
    for (const bad of ["evil.example", "http://ok.example,http://x.example/app", "*"]) {
      const p = Bun.spawnSync([
        process.execPath,
        MAIN,
        "serve",
        "--no-auth",
        "--allowed-origins",
        bad,
        "--http-port",
        "0",
      ]);
      expect(p.exitCode).toBe(1);
      expect(p.stderr.toString()).toContain("is not an origin: give scheme://host[:port]");
    }
  });

  test("an allowed origin may send changes and open /mqtt; under --no-auth its host is a name serve answers to", async () => {
    const dash = "http://dash.example:3000";
    const s = await startServe({ extra: ["--no-auth", "--no-local-proplet", "--allowed-origins", `${dash}/`] });
    try {
      const r = await send(s, "/tasks", {
        method: "POST",
        headers: { host: "dash.example:3000", origin: dash, "content-type": "application/json" },
        body: JSON.stringify(task),
      });
      expect(r.status).toBe(201);
      expect((await upgrade(s, "dash.example:3000", dash)).status).toBe(101);
      expect((await upgrade(s, "dash.example:3000", "http://dash.example:3001")).status).toBe(403);
    } finally {
      await s.kill("SIGKILL");
    }
  });
});

describe("a stand-by forwarding under --no-auth", () => {
  let pg: Postgres | undefined;
  let mosquitto: ReturnType<typeof Bun.spawn> | undefined;
  const managers: Serve[] = [];
  afterAll(async () => {
    for (const m of managers) await m.kill("SIGKILL");
    mosquitto?.kill("SIGKILL");
    await pg?.stop();
  });

  test("refuses another name itself, and the active manager answers what it forwards under its own name", async () => {
    pg = await startPostgres();
    const db = await pg.database("rebinding");
    const m = await startMosquitto();
    mosquitto = m.proc;
    const port = m.port;
    const extra = [
      "--no-auth",
      "--storage",
      "postgres",
      "--mqtt-url",
      `mqtt://127.0.0.1:${port}`,
      "--no-local-proplet",
    ];
    managers.push(await startServe({ extra, env: { PROPELLER_DB_URL: db } }));
    const standby = await startServe({ extra, env: { PROPELLER_DB_URL: db } });
    managers.push(standby);
    expect((await send(standby, "/health")).body.role).toBe("standby");
    // Through the stand-by, a rebinding page would reach the active manager under a name the active one knows.
    const r = await send(standby, "/tasks", { headers: { host: "evil.example" } });
    expect(r.status).toBe(421);
    const forwarded = await send(standby, "/tasks", { headers: { host: `localhost:${standby.httpPort}` } });
    expect(forwarded.status).toBe(200);
    expect(forwarded.body.tasks).toEqual([]);
  }, 60_000);
});
