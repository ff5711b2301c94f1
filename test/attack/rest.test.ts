import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import mqtt from "mqtt";
import { b64, cli, fixture, http, identity, type Serve, spawnPropeller, startServe, until } from "../helpers.ts";

// REST memory and secrets, attacked from outside a real serve: bodies sent without a token, event streams that
// are never read, streams held past their token's revocation, and the secrets a start prints or a browser keeps.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet", "--max-streams", "53"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const MiB = 1 << 20;
const T = "m/default/c/default/control";

/** serve's resident memory, from /proc. */
function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return Math.round(kb / 1024);
}

/**
 * Sends a request with a body of `size` zero bytes over a raw socket, as fast as the server takes it, and returns
 * the status line serve answered with, how long that took, and how much of the body it had taken by then.
 */
function hugePost(path: string, size: number, headers: Record<string, string>) {
  return new Promise<{ status: number; ms: number; sent: number }>((resolve, reject) => {
    const started = Date.now();
    const sock = connect(s.httpPort, "127.0.0.1");
    let sent = 0;
    let answer = "";
    let done = false;
    const chunked = headers["transfer-encoding"] === "chunked";
    const piece = Buffer.alloc(64 * 1024);
    const pump = () => {
      while (!done && sent < size) {
        const frame = chunked
          ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")])
          : piece;
        sent += piece.length;
        if (!sock.write(frame)) return void sock.once("drain", pump);
      }
      if (!done && chunked) sock.write("0\r\n\r\n");
    };
    sock.on("connect", () => {
      const head = Object.entries({ host: "127.0.0.1", ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      sock.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
      pump();
    });
    sock.on("data", (d) => {
      answer += d.toString("latin1");
      const m = /^HTTP\/1\.1 (\d+)/.exec(answer);
      if (m && !done) {
        done = true;
        resolve({ status: Number(m[1]), ms: Date.now() - started, sent });
        sock.destroy();
      }
    });
    sock.on("error", (e) => !done && reject(e));
    setTimeout(
      () => !done && reject(new Error(`no answer after ${Date.now() - started} ms, ${sent} bytes sent`)),
      20_000,
    );
  });
}

/** A viewer token made by the admin. */
async function viewer(name: string): Promise<{ id: string; token: string }> {
  return (await http(`${s.url}/tokens`, "POST", { role: "viewer", name })).body;
}

/** An /events subscriber on a raw socket that reads the response headers and then nothing more. */
function stalled(token: string): Promise<{ sock: Socket; head: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(s.httpPort, "127.0.0.1", () =>
      sock.write(`GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n\r\n`),
    );
    sock.once("data", (d) => {
      sock.pause();
      resolve({ sock, head: d.toString("latin1") });
    });
    sock.on("error", reject);
  });
}

/** An SSE reader that keeps up: counts the events by type, and says when the server ended the stream. */
function reader(url: string, headers: Record<string, string>) {
  const seen: Record<string, number> = {};
  let ended = false;
  let status = 0;
  const ready = (async () => {
    const res = await fetch(url, { headers });
    status = res.status;
    return res;
  })();
  const done = ready.then(async (res) => {
    if (!res.body) return;
    let buf = "";
    try {
      for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const ev = /^event: (\S+)/m.exec(buf.slice(0, i))?.[1];
          if (ev) seen[ev] = (seen[ev] ?? 0) + 1;
          buf = buf.slice(i + 2);
        }
      }
    } catch {}
    ended = true;
  });
  return { seen, ended: () => ended, status: () => status, ready, done };
}

describe("bodies: nothing unauthenticated makes serve read much", () => {
  test("POST /session with a 100 MiB body (declared, then chunked) is refused with 413 at once; serve's RSS stays flat", async () => {
    const before = rssMb(s.proc.pid);
    const declared = await hugePost("/session", 100 * MiB, {
      "content-type": "application/json",
      "content-length": String(100 * MiB),
    });
    const chunked = await hugePost("/session", 100 * MiB, {
      "content-type": "application/json",
      "transfer-encoding": "chunked",
    });
    // Without a token, a large body to any other route is refused before it is read.
    const tasks = await hugePost("/tasks", 100 * MiB, {
      "content-type": "application/json",
      "transfer-encoding": "chunked",
    });
    const after = rssMb(s.proc.pid);
    console.log(
      `POST /session 100 MiB: declared ${declared.status} in ${declared.ms} ms, chunked ${chunked.status} in ${chunked.ms} ms; ` +
        `POST /tasks without a token ${tasks.status} in ${tasks.ms} ms; serve RSS ${before} → ${after} MB`,
    );
    expect([declared.status, chunked.status, tasks.status]).toEqual([413, 413, 401]);
    expect(Math.max(declared.ms, chunked.ms, tasks.ms)).toBeLessThan(2000);
    expect(after - before).toBeLessThan(30);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  test("an authenticated JSON route takes a small body only; a task with a module still takes a large one", async () => {
    const big = JSON.stringify({ role: "viewer", name: "x".repeat(300 * 1024) });
    const tokens = await http(`${s.url}/tokens`, "POST", big);
    expect(tokens.status).toBe(413);
    expect(tokens.body.error).toContain("256 KiB");
    // add.wasm with a 1 MiB custom section: a valid module of 1 MiB, 1.4 MB as base64.
    const pad = 1 << 20;
    const section = Buffer.concat([
      Buffer.from([0, 0x80 | ((pad + 4) & 0x7f), 0x80 | (((pad + 4) >> 7) & 0x7f), (pad + 4) >> 14, 3]),
      Buffer.from("pad"),
      Buffer.alloc(pad),
    ]);
    const file = Buffer.concat([fixture("add"), section]).toString("base64");
    const task = await http(`${s.url}/tasks`, "POST", { name: "big", file });
    expect(task.status).toBe(201);
  });
});

describe("event streams: every queue has a bound", () => {
  test("50 /events subscribers that never read while 20,000 events flow: dropped, serve's RSS bounded, a reader keeps getting events", async () => {
    // Five viewers with ten stalled streams each (16 per token is the cap).
    const tokens = await Promise.all([0, 1, 2, 3, 4].map((i) => viewer(`slow-${i}`)));
    const slow = await Promise.all(Array.from({ length: 50 }, (_, i) => stalled(tokens[i % 5]!.token)));
    for (const x of slow) expect(x.head).toContain("200 OK");
    const good = reader(`${s.url}/events?types=metrics`, { authorization: `Bearer ${s.token}` });
    await good.ready;
    // Past --max-streams (53) serve answers 503.
    const extra = [0, 1, 2].map(() => reader(`${s.url}/events?types=task`, { authorization: `Bearer ${s.token}` }));
    await Promise.all(extra.map((x) => x.ready));
    expect(extra.map((x) => x.status()).sort()).toEqual([200, 200, 503]);

    // A proplet (a raw MQTT client) publishes 20,000 metrics samples of about 800 bytes: 20,000 live events.
    const login = await identity(s.url, "proplet", "flood");
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
      clientId: "flood",
      ...login,
      reconnectPeriod: 0,
    });
    await c.publishAsync(`${T}/proplet/create`, JSON.stringify({ proplet_id: "flood", metadata: { max_tasks: 1 } }));
    await until("the proplet to be known", async () => (await http(`${s.url}/proplets/flood`)).status === 200);
    const sample = JSON.stringify({
      proplet_id: "flood",
      namespace: "default",
      cpu_metrics: { percent: 1 },
      pad: "p".repeat(700),
    });
    const before = rssMb(s.proc.pid);
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMb(s.proc.pid));
    }, 100);
    for (let i = 0; i < 20_000; i += 100) {
      for (let j = 0; j < 100; j++) c.publish(`${T}/proplet/metrics`, sample);
      await Bun.sleep(5);
    }
    await until("the reader to get all 20,000 events", () => (good.seen.metrics ?? 0) >= 20_000, 30_000, 50);
    clearInterval(sampler);
    const after = rssMb(s.proc.pid);
    console.log(
      `50 stalled /events subscribers, 20,000 events of ~0.9 KB: serve RSS ${before} → peak ${peak} → ${after} MB`,
    );
    expect(good.ended()).toBe(false);
    expect(good.seen.metrics).toBe(20_000);
    // Unbounded, each stalled subscriber would hold all 18 MB of events: 900 MB in all.
    expect(peak - before).toBeLessThan(150);

    // The stalled subscribers were dropped: read now, each stream ends (the server closed it) well short of the
    // 18 MB it would have carried.
    const got = await Promise.all(
      slow.map(
        ({ sock }) =>
          new Promise<number>((resolve) => {
            let n = 0;
            sock.on("data", (d) => {
              n += d.length;
            });
            sock.on("close", () => resolve(n));
            sock.on("error", () => {});
            sock.resume();
            setTimeout(() => resolve(-1), 10_000);
          }),
      ),
    );
    expect(got.filter((n) => n < 0)).toEqual([]);
    expect(Math.max(...got)).toBeLessThan(12 * MiB);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    await c.endAsync();
  }, 90_000);

  test("one token holds at most 16 streams: the 17th is 429", async () => {
    const greedy = await viewer("greedy");
    const held = await Promise.all(Array.from({ length: 17 }, () => stalled(greedy.token)));
    const statuses = held.map((x) => Number(/^HTTP\/1\.1 (\d+)/.exec(x.head)?.[1]));
    expect(statuses.filter((n) => n === 200).length).toBe(16);
    expect(statuses.filter((n) => n === 429).length).toBe(1);
    for (const x of held) x.sock.destroy();
  });

  test("revoking a token ends its open /events and logs-follow streams, and its console session, within a second or two", async () => {
    const created = await http(`${s.url}/tasks`, "POST", { name: "waits", file: b64("add"), inputs: [1, 2] });
    const v = await viewer("revoked-soon");
    const bearer = { authorization: `Bearer ${v.token}` };
    const signIn = await fetch(`${s.url}/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: v.token }),
    });
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    const events = reader(`${s.url}/events`, bearer);
    const logs = reader(`${s.url}/tasks/${created.body.id}/logs?follow=true`, bearer);
    const consoleEvents = reader(`${s.url}/events`, { cookie });
    const follower = spawnPropeller(["tasks", "logs", created.body.id, "--follow"], {
      PROPELLER_URL: s.url,
      PROPELLER_TOKEN: v.token,
    });
    await Promise.all([events.ready, logs.ready, consoleEvents.ready]);
    expect([events.status(), logs.status(), consoleEvents.status()]).toEqual([200, 200, 200]);
    await Bun.sleep(1500); // the CLI follower starts (a process) and connects
    expect(events.ended() || logs.ended() || consoleEvents.ended()).toBe(false);
    const t0 = Date.now();
    expect((await http(`${s.url}/tokens/${v.id}`, "DELETE")).status).toBe(200);
    await until("the three streams to end", () => events.ended() && logs.ended() && consoleEvents.ended(), 2000, 10);
    console.log(`revoked: /events, logs-follow and the console's /events ended in ${Date.now() - t0} ms`);
    expect(events.seen.closed).toBe(1);
    expect((await fetch(`${s.url}/tasks`, { headers: { cookie } })).status).toBe(401);
    // The CLI following the task's logs says why it stopped.
    expect(await follower.proc.exited).toBe(1);
    expect(follower.output()).toContain("the log stream was closed: token revoked");
  });
});

describe("expiry", () => {
  test("a stream opened with a token that expires ends when it does", async () => {
    const made = await http(`${s.url}/tokens`, "POST", { role: "viewer", name: "short-lived", ttl: "2s" });
    const events = reader(`${s.url}/events`, { authorization: `Bearer ${made.body.token}` });
    await events.ready;
    expect(events.status()).toBe(200);
    await until("the stream to end at the token's expiry", () => events.ended(), 5000, 20);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(made.body.expires_at));
    expect(events.seen.closed).toBe(1);
  });
});

describe("secrets", () => {
  test("serve's start output names the token's file, never the token; the console link is a one-time code", () => {
    const out = s.output();
    expect(s.token).toBeTruthy();
    expect(out).not.toContain(s.token!);
    expect(out).toContain(join(s.dataDir, "admin.token"));
    expect(out).toMatch(/\/#login=[\w-]{43}/);
  });

  test("the console link signs in once; a second use and an expired link are refused", async () => {
    const code = /#login=([\w-]+)/.exec(s.output())![1]!;
    const use = () =>
      fetch(`${s.url}/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ code }),
      });
    const first = await use();
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ name: "admin", role: "admin", auth: true });
    const second = await use();
    expect(second.status).toBe(401);
    expect(((await second.json()) as { error: string }).error).toContain("used already or has expired");

    const short = await startServe({ extra: ["--no-local-proplet", "--login-link-ttl", "1"] });
    try {
      const late = /#login=([\w-]+)/.exec(short.output())![1]!;
      await Bun.sleep(1500);
      const res = await fetch(`${short.url}/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ code: late }),
      });
      expect(res.status).toBe(401);
    } finally {
      await short.kill();
    }
  });

  test("the session cookie is no token: its value is not the token and is refused as a Bearer token; HttpOnly, SameSite=Strict", async () => {
    const res = await fetch(`${s.url}/session`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: s.token }),
    });
    const setCookie = res.headers.get("set-cookie")!;
    expect(setCookie).toContain("HttpOnly");
    expect(setCookie).toContain("SameSite=Strict");
    const value = /propeller_session=([^;]+)/.exec(setCookie)![1]!;
    expect(value).not.toBe(s.token);
    expect(setCookie).not.toContain(s.token!);
    expect((await fetch(`${s.url}/tasks`, { headers: { cookie: `propeller_session=${value}` } })).status).toBe(200);
    const asBearer = await fetch(`${s.url}/tasks`, { headers: { authorization: `Bearer ${value}` } });
    expect(asBearer.status).toBe(401);
    // Signed out, the cookie is dead.
    await fetch(`${s.url}/session`, { method: "DELETE", headers: { cookie: `propeller_session=${value}` } });
    expect((await fetch(`${s.url}/tasks`, { headers: { cookie: `propeller_session=${value}` } })).status).toBe(401);
  });

  test("Referrer-Policy: no-referrer on every answer, and in the console's page", async () => {
    const answers = await Promise.all([
      fetch(`${s.url}/health`),
      fetch(`${s.url}/tasks`),
      fetch(`${s.url}/tasks`, { headers: { authorization: `Bearer ${s.token}` } }),
      fetch(`${s.url}/nowhere`, { headers: { authorization: `Bearer ${s.token}` } }),
      fetch(`${s.url}/session`, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" }),
    ]);
    expect(answers.map((r) => r.status)).toEqual([200, 401, 200, 404, 400]);
    for (const r of answers) expect(r.headers.get("referrer-policy")).toBe("no-referrer");
    const page = await (await fetch(`${s.url}/`)).text();
    expect(page).toContain('<meta name="referrer" content="no-referrer">');
  });

  test("a token made with --ttl is refused with 401 saying expired once its time is up; tokens list shows expiry", async () => {
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: s.token! };
    const made = cli(["tokens", "create", "--role", "viewer", "--name", "brief", "--ttl", "1s", "--json"], env);
    expect(made.code).toBe(0);
    const t = JSON.parse(made.stdout) as { token: string; expires_at: string };
    expect(Date.parse(t.expires_at) - Date.now()).toBeLessThan(1500);
    expect(cli(["tokens", "list"], env).stdout).toContain("EXPIRES");
    expect(cli(["tokens", "create", "--ttl", "soon"], env).stderr).toContain("--ttl must be a duration");
    await Bun.sleep(1200);
    const res = await fetch(`${s.url}/tasks`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toContain('token "brief" expired at');
  });

  test("a 401 shows no path of serve's disk", async () => {
    const asked: Record<string, string>[] = [
      {},
      { authorization: "Bearer ppt_wrong" },
      { cookie: "propeller_session=x" },
    ];
    for (const headers of asked) {
      const res = await fetch(`${s.url}/tasks`, { headers });
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(text).not.toContain(s.dataDir);
      expect(text).not.toMatch(/\/(tmp|home|var|root)\//);
    }
  });
});
