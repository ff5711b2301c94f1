import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { freePort, http, identity, MAIN, runTask, spawnPropeller, tempDir, until } from "../helpers.ts";
import {
  answers,
  ask,
  attacker,
  closedPort,
  healthy,
  hostile,
  namesNoAddress,
  s,
  scanned,
  startProxySite,
  stopProxySite,
  T,
} from "../proxy-site.ts";

// The OCI proxy attacked as a proplet would (docs/ARCHITECTURE.md, "Bounds and refusals", "OCI proxy"): a real
// serve with registry credentials, a provisioned proplet speaking MQTT, a hostile registry and a token thief on
// loopback (Bun.serve here, recording every request), and Debian's docker-registry for the happy path.
// This file: who may ask for what, the standalone proxy, a flood of refusals; credentials and sizes are
// proxy-bounds.test.ts. The site is test/proxy-site.ts.

beforeAll(startProxySite, 30_000);
afterAll(stopProxySite);

describe("who may ask for what", () => {
  test("a reference neither dispatched nor allowed is refused before any request, the same for an open port and a closed one", async () => {
    const open = await ask(`${scanned.host}/any/thing:v1`);
    const closed = await ask(`127.0.0.1:${await freePort()}/any/thing:v1`);
    const inside = await ask("localhost:22/ssh/banner:v1");
    for (const a of [open, closed, inside]) {
      expect(a.error).toMatch(/^not allowed: /);
      expect(a.proplet_id).toBe("attacker"); // for the asker only: the embedded broker delivers it there
      namesNoAddress(a.error, [scanned.port]);
    }
    expect(open.error).toBe(closed.error as string); // no oracle: an open port looks like a closed one
    expect(scanned.seen).toEqual([]);
    await healthy();
  });

  test("a reference the manager dispatched to another proplet is refused to this one", async () => {
    const ref = `${scanned.host}/dispatched/mod:v1`;
    const t = await runTask(s.url, { name: "add", image_url: ref, inputs: [1, 2] });
    expect(t.state).toBe(4); // the scanned server has no such image: a 404, told to the proplet that ran it
    expect(t.error).toContain("404");
    expect(t.error).not.toContain("127.0.0.1");
    const before = scanned.seen.length;
    expect(before).toBeGreaterThan(0);
    const a = await ask(ref);
    expect(a.error).toMatch(/^not allowed: /);
    expect(scanned.seen.length).toBe(before);
  });

  test("a module two proplets were sent goes to each of them by name, and to no third proplet", async () => {
    const ref = `${hostile.host}/shared/app:v1`;
    // Two proplets of the attacker's site that the manager sends the module to; they speak MQTT themselves.
    const peers = await Promise.all(
      ["edge-a", "edge-b"].map(async (id) => {
        const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, {
          clientId: id,
          ...(await identity(s.url, "proplet", id)),
        });
        const got: Record<string, unknown>[] = [];
        c.on("message", (_t, p) => got.push(JSON.parse(p.toString())));
        await c.subscribeAsync(`${T}/registry/server`, { qos: 1 });
        const hello = { proplet_id: id, namespace: "", metadata: { max_tasks: 4 } };
        await c.publishAsync(`${T}/control/proplet/create`, JSON.stringify(hello), { qos: 1 });
        await c.publishAsync(`${T}/control/proplet/alive`, JSON.stringify({ proplet_id: id, status: "online" }), {
          qos: 1,
        });
        return { id, c, got };
      }),
    );
    try {
      for (const p of peers) {
        await until(`${p.id} to be alive`, async () => (await http(`${s.url}/proplets/${p.id}`)).body?.alive === true);
        const t = (
          await http<{ id: string }>(`${s.url}/tasks`, "POST", { name: "add", image_url: ref, proplet_id: p.id })
        ).body;
        expect((await http(`${s.url}/tasks/${t.id}/start`, "POST")).status).toBe(200);
      }
      const from = answers.length;
      // Both ask at once: one fetch, sent to both.
      await Promise.all(
        peers.map((p) => p.c.publishAsync(`${T}/registry/proplet`, JSON.stringify({ app_name: ref }), { qos: 1 })),
      );
      for (const p of peers) {
        const chunk = await until(`${p.id}'s chunk`, () => p.got.find((m) => m.app_name === ref && m.data), 15_000);
        expect(chunk.proplet_id).toBe(p.id);
      }
      await Bun.sleep(300);
      // The attacker, subscribed to the same topic, got nothing of it.
      expect(answers.slice(from).filter((a) => a.app_name === ref)).toEqual([]);
      await healthy();
    } finally {
      // They never run what they are sent: no later test's task may be placed on them.
      for (const p of peers) {
        await http(`${s.url}/proplets/${p.id}/cordon`, "POST");
        await p.c.endAsync();
      }
    }
  });

  test("an allowed registry that is down: 'registry unreachable', not the connection error", async () => {
    const a = await ask(`127.0.0.1:${closedPort}/down/mod:v1`);
    expect(a.error).toBe("registry unreachable");
    namesNoAddress(a.error, [closedPort]);
    await healthy();
  });
});

describe("propeller proxy alone", () => {
  test("serves only its allow-list and the registries of its credentials; refuses credentials without their hosts", async () => {
    const bad = Bun.spawnSync([process.execPath, MAIN, "proxy"], {
      env: { ...process.env, PROPELLER_REGISTRY_USERNAME: "alice", PROPELLER_REGISTRY_PASSWORD: "s3cret" },
    });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr.toString()).toContain("PROPELLER_REGISTRY_AUTH_HOSTS");
    const badList = Bun.spawnSync([process.execPath, MAIN, "proxy", "--registry-allow", "http://x/"]);
    expect(badList.exitCode).toBe(1);
    expect(badList.stderr.toString()).toContain('--registry-allow: "http://x/" is not a registry host[:port]');

    const login = await identity(s.url, "proxy", "alone");
    const p = spawnPropeller(["proxy", "--mqtt-url", `mqtt://127.0.0.1:${s.mqttPort}`, "--data-dir", tempDir()], {
      PROXY_ENTITY_ID: login.username,
      PROXY_API_KEY: login.password,
      PROPELLER_REGISTRY_ALLOW: `127.0.0.1:${closedPort}`,
    });
    try {
      await until("the standalone proxy to subscribe", () => p.output().includes("OCI proxy on"), 10_000);
      const before = scanned.seen.length;
      // Two proxies answer now (serve's and this one): both refuse, neither asks the scanned server.
      const a = await ask(`${scanned.host}/alone/x:v1`);
      expect(a.error).toMatch(/^not allowed: /);
      expect(scanned.seen.length).toBe(before);
    } finally {
      await p.kill();
    }
  }, 30_000);
});

test("a thousand refused requests cost no registry request; past 200 they go unanswered; logged folded; serve stays healthy", async () => {
  const from = answers.length;
  const logged = () =>
    s
      .output()
      .split("\n")
      .filter((l) => l.includes("/flood/m")).length;
  const linesBefore = logged();
  for (let i = 0; i < 1000; i++)
    attacker.publish(
      `${T}/registry/proplet`,
      JSON.stringify({ app_name: `${scanned.host}/flood/m${i}:v1`, proplet_id: "attacker" }),
      { qos: 0 },
    );
  await until("the refusals", () => answers.length - from >= 200, 20_000, 50);
  await Bun.sleep(1000);
  // 200 at once, then 20 a second, each a publish; the others cost nothing. Logged folded: a line in 10 s.
  const answered = answers.length - from;
  expect(answered).toBeGreaterThanOrEqual(200);
  expect(answered).toBeLessThan(300);
  expect(logged() - linesBefore).toBeLessThanOrEqual(2);
  expect(s.output()).toContain("proplet attacker asks for more modules than are answered: dropping them");
  expect(scanned.seen.filter((r) => r.path.includes("/flood/"))).toEqual([]);
  expect((await http(`${s.url}/health`)).status).toBe(200);
});
