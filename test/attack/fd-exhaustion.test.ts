import { afterAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { http, MAIN, runTask, type Serve, startServe } from "../helpers.ts";

// Unauthenticated clients holding HTTP connections until serve has no file descriptor left: its samplers (the
// local proplet's metrics, the idle memory check) read /proc for the process's memory, which then fails, and the
// error ended serve ("SystemError: Failed to get memory usage", twice in a walk with 22,500 slowloris sockets).
// Run here under a limit of 256 descriptors, the local proplet sampling every second.

let s: Serve | undefined;
const held: Socket[] = [];
afterAll(async () => {
  for (const c of held) c.destroy();
  await s?.kill("SIGKILL");
});

test("serve out of file descriptors keeps running, and serves again once they are given back", async () => {
  s = await startServe({
    cmd: ["prlimit", "--nofile=256:256", process.execPath, MAIN],
    env: { PROPLET_METRICS_INTERVAL: "1" },
  });
  const port = Number(new URL(s.url).port);
  // Connections that never finish their request, until the kernel refuses more of them for serve.
  let refused = 0;
  for (let i = 0; i < 400 && refused < 20; i++) {
    const c = connect(port, "127.0.0.1");
    c.on("error", () => refused++);
    c.write("GET /health HTTP/1.1\r\nHost: x\r\n");
    held.push(c);
    await Bun.sleep(2);
  }
  // Samplers run meanwhile (every second), with no descriptor to open /proc with.
  await Bun.sleep(3500);
  const fds = readdirSync(`/proc/${s.proc.pid}/fd`).length;
  console.log(`${held.length} connections held (${refused} refused or reset); serve has ${fds} of its 256 descriptors`);
  expect(fds).toBeGreaterThanOrEqual(250); // it did run out
  if (s.proc.exitCode !== null) console.log(s.output().slice(-1500));
  expect({ exited: s.proc.exitCode, signal: s.proc.signalCode }).toEqual({ exited: null, signal: null });
  for (const c of held.splice(0)) c.destroy();
  await Bun.sleep(500);
  expect((await http(`${s.url}/health`)).status).toBe(200);
  const t = await runTask(s.url, {
    name: "add",
    file: Buffer.from(await Bun.file(`${import.meta.dir}/../fixtures/build/add.wasm`).arrayBuffer()).toString("base64"),
    inputs: [2, 3],
  });
  expect(t).toMatchObject({ state: 3, results: "5" });
  expect(s.output()).not.toContain("SystemError");
}, 60_000);
