import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { b64, cli, cpuSeconds, FIXTURES, http, type Serve, startServe, tokenOf, until } from "../helpers.ts";

// Latent tasks on serve's local proplet: deployed once, invoked a thousand times (fifty at a time), every answer
// right; the CLI; a stop ends the deployment.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(() => s?.kill());

describe("latent tasks", () => {
  test("deployed once, invoked 1,000 times (50 at once): every answer is its own", async () => {
    const created = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), latent: true });
    const id = created.body.id;
    const notYet = await http(`${s.url}/tasks/${id}/invoke`, "POST", { inputs: [1, 2] });
    expect(notYet.status).toBe(409);
    expect(notYet.body.error).toBe(`task ${id} is not deployed (start it first)`);
    await http(`${s.url}/tasks/${id}/start`, "POST");
    await until("the deployment", async () => (await http(`${s.url}/tasks/${id}`)).body.state === 2);
    const first = await http(`${s.url}/tasks/${id}/invoke`, "POST", { inputs: [10, 20] });
    expect(first).toEqual({ status: 200, body: { invoked: true, results: "30" } });

    let wrong = 0;
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const i = batch * 50 + j;
          const r = await http(`${s.url}/tasks/${id}/invoke`, "POST", { inputs: [i, i + 1] });
          if (r.status !== 200 || r.body.results !== String(2 * i + 1)) wrong++;
        }),
      );
    }
    expect(wrong).toBe(0);
    // Still deployed and Running; invocations are not runs of the task.
    expect((await http(`${s.url}/tasks/${id}`)).body.status).toBe("Running");

    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const viaCli = cli(["tasks", "invoke", id.slice(0, 8), "--inputs", "40,2"], env);
    expect(viaCli).toMatchObject({ code: 0, stdout: "42\n" });
    // `--start --wait` returns once it is deployed (it waited its 300 s for an end that never comes).
    const t0 = Date.now();
    const waited = cli(
      ["tasks", "create", "add", "--file", join(FIXTURES, "add.wasm"), "--latent", "--start", "--wait"],
      env,
    );
    expect(waited.code).toBe(0);
    expect(waited.stderr).toMatch(/^task \S+ deployed \(latent\): call it with propeller tasks invoke \S+\n$/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const bad = await http(`${s.url}/tasks/${id}/invoke`, "POST", { inputs: [1, 2], extra: true });
    expect(bad.status).toBe(400);

    expect((await http(`${s.url}/tasks/${id}/stop`, "POST")).status).toBe(200);
    await until("the deployment to end", async () => (await http(`${s.url}/tasks/${id}`)).body.state === 6);
    const after = await http(`${s.url}/tasks/${id}/invoke`, "POST", { inputs: [1, 2] });
    expect(after.status).toBe(409);
    const plain = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add") });
    const refused = await http(`${s.url}/tasks/${plain.body.id}/invoke`, "POST");
    expect(refused.body.error).toBe(`task ${plain.body.id} is not a latent task and cannot be invoked`);
  }, 60_000);

  test("a guest looping in an invocation: timeout_s bounds each invocation, not the deployment; a stop ends the loop", async () => {
    const deploy = async (extra: Record<string, unknown>) => {
      const c = await http(`${s.url}/tasks`, "POST", { name: "spin", file: b64("spin"), latent: true, ...extra });
      await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
      await until("the deployment", async () => (await http(`${s.url}/tasks/${c.body.id}`)).body.state === 2);
      return c.body.id as string;
    };
    // Idle past its timeout_s, it stays deployed (it failed "timed out" while idle, and the next invoke was 409).
    const bounded = await deploy({ timeout_s: 1 });
    await Bun.sleep(2500);
    expect((await http(`${s.url}/tasks/${bounded}`)).body.status).toBe("Running");
    const t0 = Date.now();
    const timedOut = await http(`${s.url}/tasks/${bounded}/invoke`, "POST", { inputs: [] });
    expect(timedOut).toEqual({ status: 409, body: { error: "task timed out after 1s" } });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await http(`${s.url}/tasks/${bounded}`)).body.status).toBe("Running");

    // Without one: the stop ends the looping invocation with the deployment (it went on at a core's full speed).
    const open = await deploy({});
    const pending = http(`${s.url}/tasks/${open}/invoke`, "POST", { inputs: [] });
    await Bun.sleep(500);
    expect((await http(`${s.url}/tasks/${open}/stop`, "POST")).status).toBe(200);
    expect(await pending).toEqual({ status: 409, body: { error: "task stopped" } });
    await Bun.sleep(500);
    const cpu0 = cpuSeconds(s.proc.pid);
    await Bun.sleep(2000);
    const busy = (cpuSeconds(s.proc.pid) - cpu0) / 2;
    console.log(`serve's CPU after the stop: ${(busy * 100).toFixed(0)} % of a core`);
    expect(busy).toBeLessThan(0.3);
  }, 30_000);
});
