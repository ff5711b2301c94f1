import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { b64, cli, http, type Serve, startServe, tokenOf, until } from "../helpers.ts";

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
});
