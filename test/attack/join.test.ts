import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { http, type Serve, startServe } from "../helpers.ts";

// Joining, attacked from outside a real serve: `POST /join` and `GET /join/ca` take no bearer token by design, so
// anyone may call them. Guessed tokens, a flood of guesses, a large body, a join token used as a REST token, and a
// viewer asking for join tokens: each is refused, tells nothing, and serve stays healthy.

let s: Serve;
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${s.url}/join`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

function rssMb(pid: number): number {
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024);
}

const guess = () => `ppj_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`;

test("a join token is no REST token, and only an admin sees or makes join tokens", async () => {
  const made = await http(`${s.url}/join-tokens`, "POST", { ttl: "10m" });
  expect(made.status).toBe(201);
  expect(made.body.token).toMatch(/^ppj_[A-Za-z0-9_-]{43}$/); // no TLS: no CA pin
  const secret = made.body.token.slice(4);
  const asBearer = async () => {
    for (const bearer of [made.body.token, secret]) {
      const r = await fetch(`${s.url}/tasks`, { headers: { authorization: `Bearer ${bearer}` } });
      expect(r.status).toBe(401);
    }
  };
  await asBearer();
  // Also once serve has read it back from storage, with the REST tokens.
  await s.kill("SIGTERM");
  s = await startServe({
    dataDir: s.dataDir,
    ports: { http: s.httpPort, mqtt: s.mqttPort },
    extra: ["--no-local-proplet"],
  });
  await asBearer();
  const v = await http(`${s.url}/tokens`, "POST", { role: "viewer", name: "watcher" });
  for (const [method, body] of [
    ["GET", undefined],
    ["POST", "{}"],
  ] as const) {
    const r = await fetch(`${s.url}/join-tokens`, {
      method,
      headers: { authorization: `Bearer ${v.body.token}`, "content-type": "application/json" },
      ...(body ? { body } : {}),
    });
    expect(r.status).toBe(403);
  }
  expect((await fetch(`${s.url}/join-tokens`)).status).toBe(401);
  // The REST token listing does not show join tokens; the join token listing never shows a secret or its hash.
  expect(JSON.stringify((await http(`${s.url}/tokens`)).body)).not.toContain(made.body.id);
  const listed = JSON.stringify((await http(`${s.url}/join-tokens`)).body);
  expect(listed).toContain(made.body.id);
  expect(listed).not.toContain(secret);
  expect(listed).not.toContain("hash");
});

test("guessed tokens get one answer that names nothing; past 10 failures a minute the address gets 429", async () => {
  const rssBefore = rssMb(s.proc.pid);
  // A valid token, to show a blocked address is blocked for everything (and that it is not spent meanwhile).
  const valid = (await http(`${s.url}/join-tokens`, "POST", { ttl: "10m" })).body.token as string;
  const answers = new Set<string>();
  const statuses: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await post({ token: i % 2 ? guess() : "ppj_short" });
    statuses.push(r.status);
    answers.add(((await r.json()) as { error: string }).error);
  }
  expect(statuses).toEqual(Array(10).fill(401));
  expect(answers.size).toBe(1);
  expect([...answers][0]).toContain("invalid join token");
  const blocked = await post({ token: valid });
  expect(blocked.status).toBe(429);
  expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
  // A flood past the limit costs serve nothing it keeps.
  await Promise.all(Array.from({ length: 300 }, () => post({ token: guess() }).then((r) => r.text())));
  expect((await http(`${s.url}/health`)).status).toBe(200);
  expect(rssMb(s.proc.pid) - rssBefore).toBeLessThan(40);
  const unspent = (await http(`${s.url}/join-tokens`)).body.join_tokens.find(
    (t: { uses: number; joined: string[] }) => t.uses === 0 && t.joined.length === 0,
  );
  expect(unspent).toBeDefined();
});

test("a large body to /join is refused before it is read; /join/ca without TLS has nothing to give", async () => {
  const big = await post(JSON.stringify({ token: "x".repeat(8 * 1024 * 1024) }));
  expect(big.status).toBe(413);
  const ca = await fetch(`${s.url}/join/ca`);
  expect(ca.status).toBe(404);
  expect(await ca.text()).not.toContain("BEGIN");
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
