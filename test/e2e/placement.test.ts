import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  cli,
  http,
  type Proc,
  type Serve,
  spawnPropeller,
  spawnProplet,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilAlive,
} from "../helpers.ts";

// Placement constraints with real proplets: a task that needs a label waits, saying why, until a proplet with it
// joins, and runs only there; a TEE found by detection counts once the operator vouches for it; SDF documents.
// Labels are the operator's, set on the proplets' identities: what a proplet says of itself is not trusted here.

let s: Serve;
const procs: Proc[] = [];
beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  procs.push(await spawnProplet(s, "plain"));
  await untilAlive(s.url, "plain");
});
afterAll(async () => {
  for (const p of procs) await p.kill();
  await s?.kill();
});

const state = async (id: string) => (await http(`${s.url}/tasks/${id}`)).body;

/** A proplet whose identity carries these labels, set by the operator (`proplets add --label`). */
async function spawnLabelled(id: string, labels: Record<string, string>, env: Record<string, string> = {}) {
  const made = await http(`${s.url}/entities`, "POST", { kind: "proplet", id, labels });
  expect(made.status).toBe(201);
  const login = { PROPLET_ENTITY_ID: id, PROPLET_API_KEY: made.body.api_key };
  return spawnPropeller(["proplet"], { PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`, ...login, ...env });
}

describe("requirements", () => {
  test("a task requiring gpu=true waits with a reason until such a proplet joins, then runs only there", async () => {
    const created = await http(`${s.url}/tasks`, "POST", {
      name: "add",
      file: b64("add"),
      inputs: [2, 3],
      requirements: { labels: { gpu: "true" } },
    });
    expect(created.status).toBe(201);
    await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    const waiting = await state(created.body.id);
    expect(waiting.status).toBe("Scheduled");
    expect(waiting.waiting_reason).toMatch(
      /^no alive proplet meets its requirements \(gpu=true\): \S+ lacks label gpu=true/,
    );
    // Unknown requirement keys are refused with the field named.
    const bad = await http(`${s.url}/tasks`, "POST", { name: "x", file: b64("add"), requirements: { gpu: "true" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("requirements");

    procs.push(await spawnLabelled("gpu-box", { gpu: "true", zone: "a" }));
    const done = await until("the task to run on gpu-box", async () => {
      const t = await state(created.body.id);
      return t.state === 3 && t;
    });
    expect(done.proplet_id).toBe("gpu-box");
    expect(done.results).toBe("5");
    expect(done.waiting_reason).toBeUndefined();
    // A second one goes there too, never to "plain".
    const again = await http(`${s.url}/tasks`, "POST", {
      name: "add",
      file: b64("add"),
      inputs: [1, 1],
      requirements: { labels: { zone: "a" } },
    });
    await http(`${s.url}/tasks/${again.body.id}/start`, "POST");
    expect(
      (
        await until("the second task", async () =>
          (await state(again.body.id)).state === 3 ? state(again.body.id) : undefined,
        )
      ).proplet_id,
    ).toBe("gpu-box");
  }, 30_000);

  test("a detected TEE is in the proplet's metadata and counts once the operator vouches for it (CLI)", async () => {
    const root = tempDir("propeller-tee-");
    mkdirSync(join(root, "dev"), { recursive: true });
    writeFileSync(join(root, "dev", "tdx_guest"), "");
    procs.push(await spawnProplet(s, "tdx-box", { PROPLET_TEE_ROOT: root }));
    await untilAlive(s.url, "tdx-box");
    expect((await http(`${s.url}/proplets/tdx-box`)).body.metadata.tee).toBe("tdx");
    expect((await http(`${s.url}/proplets/plain`)).body.metadata.tee).toBe("none");
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const made = cli(
      ["tasks", "create", "add", "--example", "add", "--inputs", "4,4", "--require", "tee=tdx", "--json"],
      env,
    );
    expect(made.code).toBe(0);
    const id = JSON.parse(made.stdout).id;
    expect(JSON.parse(made.stdout).requirements).toEqual({ tee: "tdx" });
    expect(cli(["tasks", "start", id], env).code).toBe(0);
    // Detected is only claimed: the task waits, saying so, until the operator sets the label on the identity.
    expect((await state(id)).waiting_reason).toContain("lacks TEE tdx (it reports TEE tdx itself: self-reported");
    expect(cli(["proplets", "label", "tdx-box", "--label", "tee=tdx"], env).code).toBe(0);
    const t = await until("the TEE task", async () => ((await state(id)).state === 3 ? state(id) : undefined));
    expect(t.proplet_id).toBe("tdx-box");
    const bad = cli(["tasks", "create", "x", "--example", "add", "--require", "gpu"], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--require: "gpu" is not KEY=VALUE');
  }, 30_000);
});

describe("broadcast", () => {
  test("runs on every alive proplet that meets the requirements; one run and one result per proplet", async () => {
    const alive = (await http(`${s.url}/proplets?status=active`)).body.proplets.length;
    expect(alive).toBe(3);
    const created = await http(`${s.url}/tasks`, "POST", {
      name: "add",
      file: b64("add"),
      inputs: [20, 22],
      broadcast: true,
    });
    const started = await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    expect(started.body).toMatchObject({ started: true, status: "Running" });
    const done = await until("the broadcast to end", async () => {
      const t = await state(created.body.id);
      return t.state >= 3 && t;
    });
    expect(done.status).toBe("Completed");
    expect(Object.values(done.results)).toEqual(["42", "42", "42"]);
    expect(done.parts).toHaveLength(3);
    const runs = (await http(`${s.url}/tasks/${created.body.id}/runs`)).body.runs;
    expect(runs.map((r: { proplet_id: string }) => r.proplet_id).sort()).toEqual(["gpu-box", "plain", "tdx-box"]);

    // With requirements, only the proplets that meet them; a failure names where.
    const gpu = await http(`${s.url}/tasks`, "POST", {
      name: "main",
      file: b64("fail"),
      broadcast: true,
      requirements: { labels: { gpu: "true" } },
    });
    await http(`${s.url}/tasks/${gpu.body.id}/start`, "POST");
    const failed = await until("the failing broadcast to end", async () => {
      const t = await state(gpu.body.id);
      return t.state >= 3 && t;
    });
    expect(failed.status).toBe("Failed");
    expect(failed.parts).toHaveLength(1);
    const gpuName = (await http(`${s.url}/proplets/gpu-box`)).body.name;
    expect(failed.error).toStartWith(`not completed on ${gpuName} (`);
    // Nothing to broadcast to: refused, saying so.
    const none = await http(`${s.url}/tasks`, "POST", {
      name: "add",
      file: b64("add"),
      broadcast: true,
      requirements: { labels: { fpga: "yes" } },
    });
    const refused = await http(`${s.url}/tasks/${none.body.id}/start`, "POST");
    expect(refused.status).toBe(409);
    expect(refused.body.error).toContain("no alive proplet meets the task's requirements");
  }, 30_000);

  test("a broadcast's name is the broadcast's, though its parts carry it too; latent with broadcast is refused", async () => {
    const name = `bc-${crypto.randomUUID().slice(0, 8)}`;
    const created = await http(`${s.url}/tasks`, "POST", {
      name,
      file: b64("add"),
      cli_args: ["--invoke=add"],
      inputs: [1, 2],
      broadcast: true,
    });
    await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    // It and its three parts are named so: it was "4 tasks are named …".
    const byName = await http(`${s.url}/tasks/${name}`);
    expect({ status: byName.status, id: byName.body.id }).toEqual({ status: 200, id: created.body.id });
    // Deleted, its parts go with it (they were left behind).
    const parts = (await until("its parts", async () => (await state(created.body.id)).parts)) as string[];
    expect(parts).toHaveLength(3);
    await until("the broadcast to end", async () => (await state(created.body.id)).state >= 3);
    expect((await http(`${s.url}/tasks/${created.body.id}`, "DELETE")).status).toBe(204);
    for (const id of parts) expect((await http(`${s.url}/tasks/${id}`)).status).toBe(404);
    // A latent task is deployed on one proplet and invoked there: as a broadcast its parts ran as plain tasks.
    const both = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), latent: true, broadcast: true });
    expect(both).toEqual({ status: 400, body: { error: "latent: a latent task cannot be a broadcast" } });
  });

  test("stopping a broadcast stops every part; it ends Interrupted", async () => {
    const created = await http(`${s.url}/tasks`, "POST", { name: "spin", file: b64("spin"), broadcast: true });
    await http(`${s.url}/tasks/${created.body.id}/start`, "POST");
    const t = await state(created.body.id);
    await until("every part to run", async () => {
      const parts = await Promise.all(t.parts.map((id: string) => state(id)));
      return parts.every((p) => p.state === 2);
    });
    expect((await http(`${s.url}/tasks/${created.body.id}/stop`, "POST")).status).toBe(200);
    const done = await until("the broadcast to stop", async () => {
      const x = await state(created.body.id);
      return x.state >= 3 && x;
    });
    expect(done.status).toBe("Interrupted");
    expect(done.error).toStartWith("stopped by user");
  }, 30_000);
});

describe("SDF", () => {
  test("GET /proplets/{id}/sdf as upstream builds it; an unknown proplet is 404; the CLI prints it", async () => {
    const d = await http(`${s.url}/proplets/plain/sdf`);
    expect(d.status).toBe(200);
    const name = (await http(`${s.url}/proplets/plain`)).body.name;
    expect(d.body.info.title).toBe(`Propeller Proplet: ${name} (plain)`);
    expect(d.body.sdfThing.Proplet.sdfAction.start_task.sdfInputData.sdfRef).toBe(
      "#/sdfThing/Proplet/sdfData/TaskDispatch",
    );
    expect((await http(`${s.url}/proplets/nobody/sdf`)).status).toBe(404);
    const out = cli(["proplets", "sdf", "plain"], { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) });
    expect(JSON.parse(out.stdout).info.title).toBe(d.body.info.title);
  });
});
