import { afterEach, describe, expect, test } from "bun:test";
import { type Harness, harness } from "./harness.ts";

// Latent tasks' invocations in the manager, with the proplet played by the test: the answer goes to its caller,
// a proplet that lost the deployment gets it again, answers for someone else are ignored, refusals say why.

let h: Harness;
afterEach(() => h?.close());

async function deployed(): Promise<string> {
  h = harness();
  h.proplet("p1");
  const id = await h.create({ name: "add", latent: true });
  await h.m.tasks.start(id);
  await h.settle();
  expect(h.bus.starts.at(-1)).toMatchObject({ id, latent: true, proplet_id: "p1" });
  return id;
}

const answer = (id: string, invocation_id: string, results: string, error: string | null = null, proplet_id = "p1") =>
  h.m.inbound.invokeResult({ task_id: id, invocation_id, proplet_id, results, error });

describe("invoke", () => {
  test("an invocation is published to the task's proplet and answered by its invocation id", async () => {
    const id = await deployed();
    const call = h.m.invocations.invoke(id, { inputs: ["10", "20"], env: { A: "b" } });
    await h.settle();
    const sent = h.bus.invokes.at(-1)!;
    expect(sent).toMatchObject({ id, broadcast: false, proplet_id: "p1", inputs: ["10", "20"], env: { A: "b" } });
    // Someone else's answers are not this call's.
    answer(id, "other-invocation", "99");
    answer(id, sent.invocation_id, "99", null, "p2");
    answer(id, sent.invocation_id, "30");
    expect(await call).toEqual({ invoked: true, results: "30" });
  });

  test("a proplet that lost the deployment gets the start again, and the call is retried once", async () => {
    const id = await deployed();
    const starts = h.bus.starts.length;
    const call = h.m.invocations.invoke(id, { inputs: ["1", "2"] });
    await h.settle();
    answer(
      id,
      h.bus.invokes.at(-1)!.invocation_id,
      "",
      `task ${id} has not been precompiled; deploy it as a latent task first`,
    );
    await h.settle();
    expect(h.bus.starts.length).toBe(starts + 1);
    expect(h.bus.starts.at(-1)).toMatchObject({ id, latent: true, proplet_id: "p1" });
    answer(id, h.bus.invokes.at(-1)!.invocation_id, "3");
    expect(await call).toEqual({ invoked: true, results: "3" });
  });

  test("refusals: not latent, not deployed, the module's own error", async () => {
    const id = await deployed();
    const plain = await h.create({ name: "add" });
    await expect(h.m.invocations.invoke(plain, {})).rejects.toThrow("is not a latent task and cannot be invoked");
    const idle = await h.create({ name: "add", latent: true });
    await expect(h.m.invocations.invoke(idle, {})).rejects.toThrow(`task ${idle} is not deployed (start it first)`);
    const call = h.m.invocations.invoke(id, { inputs: ["x"] });
    await h.settle();
    answer(id, h.bus.invokes.at(-1)!.invocation_id, "", "add: input 1 is not an integer");
    await expect(call).rejects.toThrow("add: input 1 is not an integer");
  });
});
