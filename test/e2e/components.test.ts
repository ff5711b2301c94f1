import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  b64,
  cli,
  FIXTURES,
  http,
  MAIN,
  runTask,
  type Serve,
  startRunning,
  startServe,
  tokenOf,
  until,
} from "../helpers.ts";

// WASI preview-2 components through the whole path: REST → dispatcher → MQTT → serve's local proplet, which
// transpiles them with jco on first sight and runs them on its worker pool.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(() => s?.kill());

describe("components", () => {
  test("a custom export add(u32, u32) -> u32 returns 30 for 10, 20; typed inputs of other kinds too", async () => {
    const calc = b64("calc.component");
    expect(await runTask(s.url, { name: "add", file: calc, inputs: [10, 20] })).toMatchObject({
      state: 3,
      results: "30",
    });
    expect(await runTask(s.url, { name: "greet", file: calc, inputs: ["Ada"] })).toMatchObject({
      state: 3,
      results: "hello, Ada",
    });
    expect(await runTask(s.url, { name: "scale", file: calc, inputs: ["[1,2]", -2] })).toMatchObject({
      state: 3,
      results: "[-2,-4]",
    });
    const bad = await runTask(s.url, { name: "add", file: calc, inputs: ["ten", 20] });
    expect(bad).toMatchObject({ state: 4, error: 'input 0 ("ten") is not a valid u32' });
  });

  test("the CLI gives a list input as JSON: tasks create scale --inputs [1,2,3],2 --start --wait", () => {
    // --inputs was cut at every comma: the list reached the component as three inputs, and the call failed.
    const file = join(FIXTURES, "calc.component.wasm");
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const r = cli(["tasks", "create", "scale", "--file", file, "--inputs", "[1,2,3],2", "--start", "--wait"], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toContain("[2,4,6]");
    const empty = cli(["tasks", "create", "scale", "--file", file, "--inputs", "[1],,2"], env);
    expect(empty.code).not.toBe(0);
    expect(empty.stderr).toContain("--inputs: input 2 is empty");
  });

  test("a guest's error with terminal escapes and a right-to-left override: --wait and watch show them escaped", async () => {
    // They printed the guest's stderr as it was: ESC [31m reached the operator's terminal, U+202E reversed the line.
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const watcher = Bun.spawn([process.execPath, MAIN, "watch"], { env: { ...process.env, ...env }, stdout: "pipe" });
    await Bun.sleep(500);
    const file = join(FIXTURES, "args.component.wasm");
    const evil = "!x\u001b[31mRED\u202etxt.exe";
    const r = cli(
      ["tasks", "create", "args", "--file", file, "--inputs", JSON.stringify(evil), "--start", "--wait"],
      env,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("refused !x\\x1b[31mRED\\u202etxt.exe");
    expect(r.stderr).not.toContain("\u001b");
    expect(r.stderr).not.toContain("\u202e");
    await Bun.sleep(500);
    watcher.kill();
    const seen = await new Response(watcher.stdout).text();
    expect(seen).toContain("\\x1b[31mRED");
    expect(seen).not.toContain("\u001b");
    expect(seen).not.toContain("\u202e");
  });

  test("a component command prints its argv and env; a failing one reports exit code 1 and its stderr", async () => {
    const args = b64("args.component");
    const t = await runTask(s.url, { name: "args", file: args, inputs: ["one", "two"], env: { GREETING: "hey" } });
    expect(t).toMatchObject({ state: 3, results: "args one two\nGREETING=hey\n" });
    const failed = await runTask(s.url, { name: "args", file: args, inputs: ["!x"] });
    expect(failed).toMatchObject({ state: 4, error: "exit code 1: refused !x" });
  });

  test("a spinning component is stopped", async () => {
    const c = await startRunning(s.url, { name: "spin", file: b64("calc.component") }, "running");
    await Bun.sleep(300);
    const t0 = performance.now();
    await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
    const t = await until("stopped", async () => {
      const v = (await http(`${s.url}/tasks/${c.body.id}`)).body;
      return v.state === 6 ? v : undefined;
    });
    expect(t.error).toBe("stopped by user");
    expect(performance.now() - t0).toBeLessThan(2000);
    // The worker it ran on is free again.
    expect(await runTask(s.url, { name: "add", file: b64("calc.component"), inputs: [1, 2] })).toMatchObject({
      results: "3",
    });
  });

  test("a latent component is deployed once and invoked many times", async () => {
    const created = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("calc.component"), latent: true });
    const id = created.body.id;
    await http(`${s.url}/tasks/${id}/start`, "POST");
    await until("the deployment", async () => (await http(`${s.url}/tasks/${id}`)).body.state === 2);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => http(`${s.url}/tasks/${id}/invoke`, "POST", { inputs: [i, 1000] })),
    );
    expect(answers.filter((r, i) => r.body.results !== String(i + 1000))).toEqual([]);
    await http(`${s.url}/tasks/${id}/stop`, "POST");
  });

  test("a broken component fails its task with the reason; the proplet keeps working", async () => {
    const broken = Buffer.from(b64("calc.component"), "base64").subarray(0, 120).toString("base64");
    const t = await runTask(s.url, { name: "add", file: broken, inputs: [1, 2] });
    expect(t.state).toBe(4);
    expect(t.error).toStartWith("invalid component: ");
    expect(await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 2] })).toMatchObject({ results: "4" });
  });
});
