import { afterAll, beforeAll, expect, test } from "bun:test";
import {
  b64,
  cpuSeconds,
  followTicker,
  http,
  runTask,
  type Serve,
  type spawnPropeller,
  spawnProplet,
  startRunning,
  startServe,
  until,
  untilAlive,
} from "../helpers.ts";

// PROPLET_RUNTIME=host: each task is a child process of this same program's `propeller wasm run`.
let s: Serve;
let p: ReturnType<typeof spawnPropeller>;

beforeAll(async () => {
  s = await startServe({ extra: ["--no-local-proplet"] });
  p = await spawnProplet(s, "host-proplet", {
    PROPLET_RUNTIME: "host",
  });
  await untilAlive(s.url, "host-proplet");
});
afterAll(async () => {
  await p?.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

test("the proplet says it runs tasks as processes", async () => {
  expect((await http(`${s.url}/proplets/host-proplet`)).body.metadata.wasm_runtime).toBe("propeller-host");
});

test("a core export and a WASI command print their stdout as the result", async () => {
  expect(await runTask(s.url, { name: "add", file: b64("add"), inputs: [10, 20] })).toMatchObject({
    state: 3,
    results: "30\n",
  });
  expect(
    await runTask(s.url, { name: "hello", file: b64("hello"), inputs: ["-n", "Ada"], env: { GREETING: "Hey" } }),
  ).toMatchObject({ state: 3, results: "Hey -n Ada from hello\n" });
});

test("components run as children too: a custom export by the task's name, else the command", async () => {
  const calc = b64("calc.component");
  expect(await runTask(s.url, { name: "add", file: calc, inputs: [10, 20] })).toMatchObject({
    state: 3,
    results: "30\n",
  });
  const args = await runTask(s.url, {
    name: "args",
    file: b64("args.component"),
    inputs: ["a"],
    env: { GREETING: "x" },
  });
  expect(args).toMatchObject({ state: 3, results: "args a\nGREETING=x\n" });
});

test("a child's output is followed while it runs", async () => {
  // Long enough that a CLI started on a busy machine still meets the task running.
  const r = await followTicker(s.url, 8, 300);
  expect(r.stateAtFirstLine).toBe(2);
  expect(r.code).toBe(0);
  expect(r.output).toBe(`${[1, 2, 3, 4, 5, 6, 7, 8].map((i) => `tick ${i}\n`).join("")}ticker done\n`);
});

test("a latent task is refused by the host runtime, saying so", async () => {
  const t = await runTask(s.url, { name: "add", file: b64("add"), latent: true });
  expect(t).toMatchObject({ state: 4, error: "latent tasks are not supported by the host runtime" });
});

test("a failing command reports its exit code and stderr", async () => {
  const t = await runTask(s.url, { name: "fail", file: b64("fail") });
  expect(t.state).toBe(4);
  expect(t.error).toBe("exit code 3: something went wrong");
  expect(t.results).toBe("partial output\n");
});

test("stop kills a spinning child and frees its CPU", async () => {
  const c = await startRunning(s.url, { name: "spin", file: b64("spin") }, "running");
  await Bun.sleep(300);
  await http(`${s.url}/tasks/${c.body.id}/stop`, "POST");
  const t = await until(
    "stopped",
    async () => {
      const v = (await http(`${s.url}/tasks/${c.body.id}`)).body;
      return v.state === 6 ? v : undefined;
    },
    2000,
  );
  expect(t.error).toBe("stopped by user");
  const cpu0 = cpuSeconds(p.proc.pid);
  await Bun.sleep(800);
  expect(cpuSeconds(p.proc.pid) - cpu0).toBeLessThan(0.3);
});

test("a task's process ends when its proplet is killed with -9", async () => {
  const q = await spawnProplet(s, "host-orphan", {
    PROPLET_RUNTIME: "host",
  });
  await untilAlive(s.url, "host-orphan");
  await startRunning(s.url, { name: "spin", file: b64("spin"), proplet_id: "host-orphan" }, "running");
  await Bun.sleep(300);
  const children = () =>
    Bun.spawnSync(["pgrep", "-P", String(q.proc.pid)])
      .stdout.toString()
      .trim()
      .split("\n")
      .filter(Boolean)
      .map(Number);
  const kids = children();
  expect(kids.length).toBeGreaterThan(0);
  await q.kill("SIGKILL");
  await until(
    "the orphaned child to exit",
    () => kids.every((pid) => !Bun.spawnSync(["kill", "-0", String(pid)]).success),
    3000,
  );
});
