import { describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import { bigModule } from "../heavy-module.ts";
import { http, identity, type Serve, startServe, until } from "../helpers.ts";

// Attacks on self-reported claims (issue 25, item 10), against real serve processes and a proplet that lies over a
// real MQTT connection. What modules cost is hardening.test.ts; the data dir's files, hardening-files.test.ts.

/**
 * A provisioned proplet that announces itself with claims it has no evidence for (a GPU label and a SEV TEE) over
 * a real MQTT connection, and keeps heartbeating; it never runs what it is sent.
 */
async function liar(s: Serve, id: string) {
  const login = await identity(s.url, "proplet", id);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${s.mqttPort}`, { clientId: id, ...login, reconnectPeriod: 0 });
  const base = "m/default/c/default/control/proplet";
  const metadata = { tags: ["gpu=true"], tee: "sev", max_tasks: 4, liveliness_interval_s: 1, run_ids: true };
  await c.publishAsync(`${base}/create`, JSON.stringify({ proplet_id: id, namespace: "default", metadata }), {
    qos: 1,
  });
  const beat = () =>
    c.publish(`${base}/alive`, JSON.stringify({ proplet_id: id, status: "alive", namespace: "default" }));
  const timer = setInterval(beat, 500);
  await until(`${id} to be alive`, async () => (await http(`${s.url}/proplets/${id}`)).body?.alive === true);
  return {
    close: () => {
      clearInterval(timer);
      c.end(true);
    },
  };
}

/** Creates and starts a task needing a GPU label and a SEV TEE; its id. */
async function gpuTeeTask(s: Serve): Promise<string> {
  const created = await http(`${s.url}/tasks`, "POST", {
    name: "main",
    file: Buffer.from(bigModule(1, 1)).toString("base64"),
    requirements: { labels: { gpu: "true" }, tee: "sev" },
  });
  expect(created.status).toBe(201);
  expect((await http(`${s.url}/tasks/${created.body.id}/start`, "POST")).status).toBe(200);
  return created.body.id;
}

describe("claims: what a proplet says of itself is not evidence", () => {
  test("claimed gpu=true and tee=sev attract nothing; the operator's labels do", async () => {
    const s = await startServe({ extra: ["--no-local-proplet"] });
    const p = await liar(s, "liar");
    try {
      const id = await gpuTeeTask(s);
      await Bun.sleep(1000); // heartbeats and placement rounds come and go
      const waiting = (await http(`${s.url}/tasks/${id}`)).body;
      expect(waiting.status).toBe("Scheduled");
      expect(waiting.waiting_reason).toContain(
        "lacks label gpu=true (it claims gpu=true itself: self-reported, not trusted: set it on its identity, or serve --trust-proplet-labels)",
      );
      // A label alone is not enough: the TEE too is only its word.
      const labelled = await http(`${s.url}/entities/liar/labels`, "PUT", { labels: { gpu: "true" } });
      expect(labelled.status).toBe(200);
      await until("the reason to move on to the TEE", async () =>
        (await http(`${s.url}/tasks/${id}`)).body.waiting_reason?.includes("lacks TEE sev (it reports TEE sev itself"),
      );
      // The operator vouches for both: now it gets the task.
      expect((await http(`${s.url}/entities/liar/labels`, "PUT", { labels: { gpu: "true", tee: "sev" } })).status).toBe(
        200,
      );
      const running = await until("the task to be placed on liar", async () => {
        const t = (await http(`${s.url}/tasks/${id}`)).body;
        return t.state === 2 && t;
      });
      expect(running.proplet_id).toBe("liar");
      // Labels go on proplet identities only.
      const bad = await http(`${s.url}/entities`, "POST", { kind: "proxy", labels: { gpu: "true" } });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toContain("labels");
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    } finally {
      p.close();
      await s.kill();
    }
  }, 30_000);

  test("with --trust-proplet-labels the same claims are taken", async () => {
    const s = await startServe({ extra: ["--no-local-proplet", "--trust-proplet-labels"] });
    const p = await liar(s, "liar");
    try {
      const id = await gpuTeeTask(s);
      const running = await until("the task to be placed on liar", async () => {
        const t = (await http(`${s.url}/tasks/${id}`)).body;
        return t.state === 2 && t;
      });
      expect(running.proplet_id).toBe("liar");
    } finally {
      p.close();
      await s.kill();
    }
  }, 30_000);
});
