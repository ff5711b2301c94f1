import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { b64, http, runTask, tempDir, until } from "../helpers.ts";
import { keys, outside, procs, s, sandbox, startSandboxSite, stopSandboxSite } from "../sandbox-site.ts";

// Task sandbox attacks (issue 25, items 1, 6 and 7's FL key), against a real serve and real proplets: one runs
// each task as a child process (PROPLET_RUNTIME=host), one in worker threads. A task is written by whoever may
// call the manager; nothing in it may reach the proplet's user, its key, or its disk beyond what it was given.
// This file: the host runtime's child process and the FL key; a guest's files are sandbox-files.test.ts.

const KEY_MARKER = "PROPLET_API_KEY";

beforeAll(startSandboxSite);
afterAll(stopSandboxSite);

describe("the host runtime's child process", () => {
  let evil: string;
  let marker: string;
  beforeAll(() => {
    // A shared object that, loaded into any process, writes a marker with that process's PROPLET_API_KEY.
    evil = tempDir("propeller-sb-evil-");
    marker = join(evil, "pwned");
    const src = join(evil, "evil.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void pwn(void) {
  FILE *f = fopen(${JSON.stringify(marker)}, "a");
  if (f) { const char *k = getenv("${KEY_MARKER}"); fprintf(f, "so key=%s\\n", k ? k : ""); fclose(f); }
}
`,
    );
    const cc = Bun.spawnSync(["clang", "-shared", "-fPIC", "-o", join(evil, "evil.so"), src]);
    if (cc.exitCode !== 0) throw new Error(`clang: ${cc.stderr}`);
    writeFileSync(
      join(evil, "evil.js"),
      `require("fs").appendFileSync(${JSON.stringify(marker)}, "js key=" + process.env.${KEY_MARKER} + "\\n");`,
    );
    writeFileSync(join(evil, "bunfig.toml"), `preload = [${JSON.stringify(join(evil, "evil.js"))}]\n`);
  });

  test("a task's LD_PRELOAD, BUN_OPTIONS, NODE_OPTIONS, BUN_CONFIG_* run nothing; the guest still sees them", async () => {
    const env = {
      LD_PRELOAD: join(evil, "evil.so"),
      BUN_OPTIONS: `--preload ${join(evil, "evil.js")}`,
      NODE_OPTIONS: `--require ${join(evil, "evil.js")}`,
      BUN_CONFIG_FILE: join(evil, "bunfig.toml"),
      BUN_INSTALL: evil,
      PATH: evil,
      MULTI: "line one\nline two",
    };
    const t = await sandbox("sb-host", ["env"], { env });
    expect(t.state).toBe(3);
    expect(existsSync(marker)).toBe(false);
    // The guest's environ holds every value as given, through `--env`, and nothing of the proplet's.
    for (const [k, v] of Object.entries(env)) expect(t.results).toContain(`${k}=${v}\n`);
    expect(t.results).not.toContain(KEY_MARKER);
    expect(t.results).not.toContain(keys["sb-host"]!);
    // Of the proplet's variables only PROPLET_ID, which the proplet gives every task.
    expect(t.results.match(/^PROPLET_\w*/gm)).toEqual(["PROPLET_ID"]);
    // Of Propeller's own only the task's and run's ids and the attempt, which every guest is given (see README).
    expect(t.results.match(/^PROPELLER_\w*/gm)).toEqual(["PROPELLER_TASK_ID", "PROPELLER_RUN_ID", "PROPELLER_ATTEMPT"]);
    expect(t.results).not.toMatch(/^(HOME|USER|BUN_INSPECT\w*)=/m);
  });

  test("a guest never sees the proplet's key in its environ, in either runtime", async () => {
    for (const id of ["sb-host", "sb-threads"]) {
      const t = await sandbox(id, ["env"]);
      expect(t.state).toBe(3);
      expect(t.results).not.toContain(keys[id]!);
      expect(t.results).not.toContain(KEY_MARKER);
    }
  });

  test("no task field becomes an option of the child: a name or an input that reads as --dir is the guest's", async () => {
    writeFileSync(join(outside, "secret.txt"), "outside secret\n");
    const name = `--dir=${outside}::/x`;
    // The name is argv[0] of the command (no export by that name): it must not preopen `outside`.
    const t = await runTask(
      s.url,
      { name, file: b64("sandbox"), inputs: ["cat", "/x/secret.txt"], proplet_id: "sb-host" },
      20_000,
    );
    expect(JSON.stringify(t)).not.toContain("outside secret");
    expect(t.results).toBe("cat: Capabilities insufficient\n"); // no /x: nothing was preopened
    // An input that reads as an option is the guest's argument.
    const input = await sandbox("sb-host", ["cat", `--dir=${outside}::/x`]);
    expect(input.results).toBe("cat: Capabilities insufficient\n");
  });

  test("env names that are not names are refused at create (the proplet refuses them too); unknown cli_args fail the task saying why", async () => {
    for (const [name, value] of [
      ["A=B", "x"],
      ["--dir", `${outside}::/x`],
    ]) {
      const r = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), env: { [name!]: value } });
      expect(r.status).toBe(400);
      expect(r.body.error).toContain(`env name ${JSON.stringify(name)} is not allowed`);
    }
    const opt = await sandbox("sb-host", ["env"], { cli_args: ["-W", "unknown"] });
    expect(opt.state).toBe(4);
    expect(opt.error).toContain("unsupported runtime option");
    const envFlag = await sandbox("sb-host", ["env"], { cli_args: [`--env=LD_PRELOAD=${join(evil, "evil.so")}`] });
    expect(envFlag.state).toBe(3);
    expect(envFlag.results).toContain(`LD_PRELOAD=${join(evil, "evil.so")}`);
    expect(existsSync(marker)).toBe(false);
  });
});

describe("the FL key", () => {
  test("a task whose env names another port of the gateway's host does not get the proplet's key", async () => {
    const seen: string[] = [];
    const hostile = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const u = new URL(req.url);
        seen.push(`${req.method} ${u.pathname} ${req.headers.get("authorization")}`);
        if (u.pathname.startsWith("/fl/models/")) return Response.json({ w: [0], b: 0 });
        if (u.pathname === "/fl/update") return Response.json({ ok: true });
        return Response.json({ error: "no" }, { status: 404 });
      },
    });
    try {
      const fl = `http://127.0.0.1:${hostile.port}/fl`;
      for (const id of ["sb-threads", "sb-host"]) {
        seen.length = 0;
        const t = await sandbox(id, ["env"], {
          env: {
            ROUND_ID: "r1",
            MODEL_URI: "fl/models/global_model_v1",
            PROPELLER_FL_URL: fl,
            MODEL_REGISTRY_URL: fl,
            MANAGER_COORDINATOR_URL: fl,
            DATA_STORE_URL: fl,
          },
        });
        await until("the hostile listener to be asked", () => seen.length >= 2);
        expect(seen.some((l) => l.startsWith("GET /fl/models/1"))).toBe(true);
        expect(seen.every((l) => l.endsWith(" null"))).toBe(true);
        expect(JSON.stringify(t)).not.toContain(keys[id]!);
      }
    } finally {
      hostile.stop(true);
    }
  });
});

test("the proplets and serve are still healthy", async () => {
  expect((await fetch(`${s.url}/health`)).ok).toBe(true);
  for (const id of Object.keys(procs)) expect((await http(`${s.url}/proplets/${id}`)).body.alive).toBe(true);
});
