import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "../cli-run.ts";
import { type Serve, startServe, tempDir } from "../helpers.ts";

// The --url an operator gives. A manager behind a reverse proxy at a path (`https://gateway/propeller/` → serve's
// `/`), as an operator puts it beside other sites: the CLI keeps the path of its --url (it asked `/tasks` at the
// proxy's root, and got the proxy's 404). And serve's MQTT port given for its HTTP one. Real serve; the proxy is a
// Bun server that strips the prefix, as nginx's `proxy_pass …/;` does.

let s: Serve;
let proxy: ReturnType<typeof Bun.serve>;
const asked: string[] = [];

beforeAll(async () => {
  s = await startServe();
  proxy = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const url = new URL(req.url);
      asked.push(url.pathname);
      if (!url.pathname.startsWith("/propeller/")) return new Response("not here", { status: 404 });
      const target = new URL(url.pathname.slice("/propeller".length) + url.search, s.url);
      return fetch(target, { method: req.method, headers: req.headers, body: req.body, redirect: "manual" });
    },
  });
});

afterAll(async () => {
  proxy?.stop(true);
  await s?.kill();
});

/** The CLI run to completion in its own process (the proxy answers in this one meanwhile), through the proxy. */
const cli = (args: string[]) =>
  run(args, { PROPELLER_URL: `http://127.0.0.1:${proxy.port}/propeller/`, PROPELLER_TOKEN: s.token! });

test("tasks create --wait, tasks get, logs and backup through a proxy at /propeller/", async () => {
  const created = await cli([
    "tasks",
    "create",
    "viaproxy",
    "--example",
    "add",
    "--function",
    "add",
    "--inputs",
    "2,3",
    "--start",
    "--wait",
  ]);
  expect(created.stderr).toBe("");
  expect(created.code).toBe(0);
  expect(created.stdout).toContain("5");
  const got = await cli(["tasks", "get", "viaproxy", "--json"]);
  expect(got.code).toBe(0);
  expect(JSON.parse(got.stdout).results).toBe("5");
  expect((await cli(["tasks", "logs", "viaproxy"])).stdout.trim()).toBe("5");
  const file = join(tempDir(), "b.jsonl");
  expect((await cli(["backup", file])).code).toBe(0);
  expect(existsSync(file)).toBe(true);
  expect(asked.length).toBeGreaterThan(3);
  expect(asked.filter((p) => !p.startsWith("/propeller/"))).toEqual([]);
});

test("--url at serve's MQTT port says that it may be the MQTT port, not only 'is serve running?'", async () => {
  const { code, stderr } = await run(["tasks", "list", "--url", `http://127.0.0.1:${s.mqttPort}`], {
    PROPELLER_TOKEN: s.token!,
  });
  expect(code).toBe(1);
  expect(stderr).toContain(`cannot reach the manager at http://127.0.0.1:${s.mqttPort}`);
  expect(stderr).toContain("is the port serve's --http-port, default 7070, and not its MQTT port, default 1883?");
});
