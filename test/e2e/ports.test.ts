import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { freePort, http, MAIN, type Serve, startServe, tempDir } from "../helpers.ts";

// One port, one site: a second serve on a port in use is refused before it writes anything (no data dir, no admin
// token, no database), naming the holder when it is a propeller; the first one keeps serving alone.

let first: Serve;
beforeAll(async () => {
  first = await startServe({ extra: ["--no-local-proplet"] });
});
afterAll(async () => {
  await first?.kill("SIGKILL");
});

/** A second serve, spawned without blocking (a holder in this process must answer); its outcome and data dir. */
async function second(httpPort: number, mqttPort: number) {
  const dir = join(tempDir(), "second");
  const p = Bun.spawn(
    [
      process.execPath,
      MAIN,
      "serve",
      "--data-dir",
      dir,
      "--http-port",
      String(httpPort),
      "--mqtt-port",
      String(mqttPort),
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const killer = setTimeout(() => p.kill("SIGKILL"), 20_000); // one that started would never exit by itself
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  clearTimeout(killer);
  return { code, stderr, dir };
}

test("the HTTP port of a running serve: refused naming another propeller serve, nothing written", async () => {
  const r = await second(first.httpPort, await freePort());
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`port ${first.httpPort} (--http-port) is used by another propeller serve, version`);
  expect(r.stderr).toContain(`PID ${first.proc.pid}`);
  expect(existsSync(r.dir)).toBe(false); // no admin.token, no propeller.db: not even the directory
  // The first is still the only site on its port.
  expect((await http(`${first.url}/tasks`)).status).toBe(200);
});

test("the MQTT port of a running serve: refused before the data dir and admin token are written", async () => {
  const r = await second(await freePort(), first.mqttPort);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`port ${first.mqttPort} (--mqtt-port) is in use on 127.0.0.1 by PID ${first.proc.pid}`);
  expect(r.stderr).toContain("nothing was written");
  expect(existsSync(join(r.dir, "admin.token"))).toBe(false);
  expect(existsSync(r.dir)).toBe(false);
});

test("a port held by something else is named with its PID; one port given twice is refused", async () => {
  const other: Server = createServer();
  const port = await new Promise<number>((resolve) =>
    other.listen(0, "127.0.0.1", () => resolve((other.address() as { port: number }).port)),
  );
  try {
    const r = await second(port, await freePort());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`port ${port} (--http-port) is in use on 127.0.0.1 by PID ${process.pid}`);
    expect(r.stderr).not.toContain("propeller serve");
    expect(existsSync(r.dir)).toBe(false);
  } finally {
    other.close();
  }
  const same = await freePort();
  const twice = await second(same, same);
  expect(twice.code).toBe(1);
  expect(twice.stderr).toContain(`--mqtt-port ${same} is also --http-port: give each its own port`);
  expect(existsSync(twice.dir)).toBe(false);
});
