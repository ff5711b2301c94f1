import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { b64, cli, followTicker, http, MAIN, runTask, type Serve, startServe, tempDir, tokenOf } from "../helpers.ts";

// The command line as a person meets it: strict about what it does not know, short about what went wrong.

let s: Serve;
beforeAll(async () => {
  s = await startServe();
});
afterAll(async () => {
  await s?.kill("SIGKILL");
});

const ESC = "\u001b[";

describe("tasks a person can follow", () => {
  test("create --start that cannot start leaves nothing behind; --wait needs --start; get shows every field", () => {
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const before = JSON.parse(cli(["tasks", "list", "--json"], env).stdout).total;
    const failed = cli(["tasks", "create", "add", "--example", "add", "--proplet-id", "nowhere", "--start"], env);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("proplet nowhere (pinned by the task) not found (the task was not kept)");
    expect(JSON.parse(cli(["tasks", "list", "--json"], env).stdout).total).toBe(before);
    expect(cli(["tasks", "create", "x", "--example", "add", "--wait"], env).stderr).toContain("give --start too");
    const id = JSON.parse(
      cli(["tasks", "create", "y", "--example", "add", "--priority", "70", "--json"], env).stdout,
    ).id;
    // A task without a module is made (upstream's upload-later flow), with a word about it; one with a module is not.
    const bare = cli(["tasks", "create", "z", "--inputs", "1"], env);
    expect(bare.code).toBe(0);
    expect(bare.stderr).toContain("warning: the task has no module yet: give --file, --example or --image-url");
    expect(cli(["tasks", "create", "add", "--example", "add"], env).stderr).toBe("");
    const shown = cli(["tasks", "get", id.slice(0, 8)], env).stdout;
    expect(shown).toMatch(/priority\s+70/);
    expect(shown).toMatch(/start_time\s+never/);
    expect(shown).toMatch(/created_at\s+\S+ \(\d+ s ago\)/);
  });
});

describe("tasks clone", () => {
  test("a copy with other inputs runs the original's module; --unset leaves a field out; a workflow is listed by name", async () => {
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const made = await http(`${s.url}/tasks`, "POST", { name: "add", file: b64("add"), inputs: [1, 2], timeout_s: 30 });
    const out = cli(
      ["tasks", "clone", made.body.id.slice(0, 8), "--inputs", "20,22", "--unset", "timeout_s", "--start"],
      env,
    );
    expect(out.code).toBe(0);
    const copy = out.stdout.trim();
    expect(copy).not.toBe(made.body.id);
    let t = (await http(`${s.url}/tasks/${copy}`)).body;
    for (let i = 0; i < 100 && t.state !== 3; i++) {
      await Bun.sleep(100);
      t = (await http(`${s.url}/tasks/${copy}`)).body;
    }
    expect(t).toMatchObject({ state: 3, inputs: ["20", "22"], results: "42" });
    expect(t.timeout_s).toBeUndefined();
    expect(cli(["tasks", "clone", made.body.id, "--unset", "state"], env).stderr).toContain(
      "--unset state: not a task field",
    );
    await http(`${s.url}/workflows`, "POST", { name: "etl by name", tasks: [{ name: "add", file: b64("add") }] });
    expect(cli(["workflows", "list"], env).stdout).toMatch(/NAME[\s\S]*etl by name/);
  });
});

describe("tasks logs", () => {
  test("--follow shows a daemon's lines while it runs, then ends with the task", async () => {
    const r = await followTicker(s.url, 8, 300);
    expect(r.stateAtFirstLine).toBe(2); // Running: the line came before the end
    expect(r.code).toBe(0);
    expect(r.output).toBe(`${[1, 2, 3, 4, 5, 6, 7, 8].map((i) => `tick ${i}\n`).join("")}ticker done\n`);
    // Afterwards the kept output is there without --follow, whole lines in order.
    const kept = (await http(`${s.url}/tasks/${r.id}/logs`)).body;
    expect(kept.status).toBe("Completed");
    expect(kept.chunks.map((c: { data: string }) => c.data).join("")).toContain("tick 8\n");
  });

  test("a short task's output is its result; a failed task exits 1 saying why; bad ids and flags are refused", async () => {
    const env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
    const hello = await runTask(s.url, { name: "hello", file: b64("hello"), inputs: ["Ada"] });
    expect(cli(["tasks", "logs", hello.id, "--follow"], env)).toMatchObject({
      code: 0,
      stdout: "Hello Ada from hello\n",
    });
    const failed = await runTask(s.url, { name: "add", file: b64("add"), inputs: [1] });
    const logs = cli(["tasks", "logs", failed.id], env);
    expect(logs.code).toBe(1);
    expect(logs.stderr).toContain(`task ${failed.id} ended Failed: `);
    expect(cli(["tasks", "logs", "nosuchtask"], env).stderr).toContain("404");
    // A run's memory bound from the CLI too (it was REST only).
    const capped = cli(["tasks", "create", "add", "--example", "add", "--max-memory-mb", "64", "--json"], env);
    expect(JSON.parse(capped.stdout)).toMatchObject({ max_memory_mb: 64 });
    expect(cli(["tasks", "create", "add", "--example", "add", "--max-memory-mb", "5000"], env).stderr).toStartWith(
      'error: --max-memory-mb must be an integer between 1 and 4096, got "5000"',
    );
    // A watch of a task that does not exist: said at once (it waited in silence for events that never come).
    const watch = cli(["watch", "--task", "nosuchtask"], env);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toContain("task nosuchtask not found");
    // Not started: it printed nothing at all and exited 0, as if the task had written nothing.
    const pending = await http(`${s.url}/tasks`, "POST", { name: "hello", file: b64("hello") });
    expect(cli(["tasks", "logs", pending.body.id], env)).toMatchObject({
      code: 0,
      stdout: "",
      stderr: `task ${pending.body.id} is Pending: not started yet (propeller tasks logs ${pending.body.id} --follow waits for it)\n`,
    });
    const bad = await http(`${s.url}/tasks/${hello.id}/logs?follow=maybe`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toStartWith("follow: ");
  });
});

describe("strict and helpful", () => {
  test("an error echoing a typed or stored id shows its control characters escaped, whichever route said it", () => {
    // `job ID not found` echoes the id as it came: printed raw, its escape sequences drove the terminal.
    const evil = cli(["jobs", "get", "\u001b]0;owned\u0007\u001b[2Jx"], {
      PROPELLER_URL: s.url,
      PROPELLER_TOKEN: tokenOf(s.url),
    });
    expect(evil.code).toBe(1);
    expect(evil.stderr).toContain("\\x1b]0;owned\\x07\\x1b[2Jx");
    expect(evil.stderr).not.toContain("\u001b");
    expect(evil.stderr).not.toContain("\u0007");
  });

  test("--data-dir carried over from serve names the env var that client commands and proplets read instead", () => {
    const client = cli(["tasks", "list", "--data-dir", "/tmp/nowhere"]);
    expect(client.code).toBe(1);
    expect(client.stderr).toStartWith(
      "error: propeller tasks list: unknown flag --data-dir: a client command finds the admin token of a serve on this machine in PROPELLER_DATA_DIR=DIR (serve's --data-dir), or takes --token\n",
    );
    const proplet = cli(["proplet", "--data-dir=/tmp/nowhere"]);
    expect(proplet.code).toBe(1);
    expect(proplet.stderr).toStartWith(
      "error: propeller proplet: unknown flag --data-dir: a proplet's state dir is set by the env var PROPLET_DATA_DIR=DIR\n",
    );
    // restore takes no default data dir (it could replace a store): it says what to give, with a line to type.
    const restore = cli(["restore", "site.jsonl"]);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toStartWith(
      "error: restore needs --data-dir: the store to restore into, empty or new (a running serve's must be stopped first), e.g. propeller restore site.jsonl --data-dir /var/lib/propeller-restored\n",
    );
    // A file where the data dir should be: said as such (it was "EEXIST: file already exists, mkdir").
    const archive = join(tempDir(), "empty.jsonl");
    writeFileSync(
      archive,
      '{"format":"propeller-archive","version":1,"source":"sqlite","created_at":"2026-12-08T00:00:00.000Z"}\n{"end":true,"records":0}\n',
    );
    expect(cli(["restore", archive, "--data-dir", archive]).stderr).toStartWith(
      `error: --data-dir ${archive}: ${archive} is a file, not a directory`,
    );
    // A path through a file, and backup's own --data-dir, the same (ENOTDIR; "no sqlite store at FILE/propeller.db").
    expect(cli(["restore", archive, "--data-dir", join(archive, "sub")]).stderr).toStartWith(
      `error: --data-dir ${join(archive, "sub")}: ${archive} is a file, not a directory`,
    );
    expect(cli(["backup", join(tempDir(), "b.jsonl"), "--data-dir", archive]).stderr).toStartWith(
      `error: --data-dir ${archive}: ${archive} is a file, not a directory`,
    );
    // A command that has no use for a data dir says nothing more than before.
    expect(cli(["certs", "show", "x.pem", "--data-dir", "d"]).stderr).toStartWith(
      "error: propeller certs show: unknown flag --data-dir\n",
    );
  });

  test("unknown flags and commands are refused naming them and the nearest known one, error first", () => {
    const bogus = cli(["serve", "--bogus-flag"]);
    expect(bogus.code).toBe(1);
    expect(bogus.stderr.split("\n").slice(0, 2)).toEqual([
      "error: propeller serve: unknown flag --bogus-flag",
      "usage: propeller serve [options]   (propeller help serve)",
    ]);
    expect(cli(["--versoin"]).stderr).toStartWith("error: propeller: unknown flag --versoin (did you mean --version?)");
    expect(cli(["nosuch"]).stderr).toContain(", help, version, completion\n");
    expect(cli(["wasm", "run", "/nonexistent.wasm"]).stderr).toStartWith(
      "error: cannot read /nonexistent.wasm: no such file",
    );
    expect(cli(["fl", "configure", "--rounds", "5"]).stderr).toStartWith(
      "error: fl configure needs --experiment-id ID",
    );
    const typo = cli(["tasks", "create", "x", "--input", "1,2"]);
    expect(typo.stderr).toStartWith("error: propeller tasks create: unknown flag --input (did you mean --inputs?)");
    expect(cli(["tasks", "lst"]).stderr).toStartWith(
      'error: propeller tasks: unknown command "lst" (did you mean list?)',
    );
    // Words past a command's positionals: `serve /some/dir` started on the default data dir, and `tasks create foo
    // bar` created foo, both in silence.
    expect(cli(["serve", "/srv/propeller"]).stderr).toStartWith(
      'error: propeller serve: unexpected argument "/srv/propeller": it takes none (did you mean --data-dir /srv/propeller?)',
    );
    expect(cli(["tasks", "create", "foo", "bar", "--file", "x.wasm"]).stderr).toStartWith(
      'error: propeller tasks create: unexpected argument "bar": it takes NAME',
    );
    // A one-time schedule with --start ran now and again at its time.
    expect(
      cli(["tasks", "create", "x", "--example", "add", "--schedule", "0 0 1 1 *", "--no-recurring", "--start"]).stderr,
    ).toStartWith(
      "error: --start runs the task now, and --no-recurring --schedule once more at its time: give one of them",
    );
    // --no-recurring without a schedule was sent as nothing, in silence.
    expect(cli(["tasks", "create", "x", "--example", "add", "--no-recurring"]).stderr).toStartWith(
      "error: --no-recurring and --is-recurring go with --schedule: give the schedule too",
    );
    const missing = cli(["tasks", "get"]);
    expect(missing.stderr.split("\n").slice(0, 2)).toEqual([
      "error: Missing required positional argument: ID",
      "usage: propeller tasks get <ID> [options]   (propeller help tasks get)",
    ]);
    const level = cli(["serve", "--log-level", "verbose", "--http-port", "0", "--mqtt-port", "0"]);
    expect(level.code).toBe(1);
    expect(level.stderr).toStartWith(
      "error: --log-level verbose: unknown log level verbose (use silent, error, warn, info, debug, trace)",
    );
    // The flag named (it said only "unknown log format jsn"); a bare flag was read as the default.
    const format = cli(["serve", "--log-format", "jsn", "--http-port", "0", "--mqtt-port", "0"]);
    expect(format.code).toBe(1);
    expect(format.stderr).toStartWith("error: --log-format jsn: unknown log format jsn (use json or pretty)");
    const bare = cli(["serve", "--http-port", "0", "--mqtt-port", "0", "--log-level"]);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toStartWith("error: --log-level needs a value");
  });

  test("at --log-level warn (advised on flash) serve still says where the admin token is and the console's link", async () => {
    const quiet = await startServe({ extra: ["--log-level", "warn"] });
    try {
      expect(quiet.output()).toContain("REST needs a bearer token: the admin token is in ");
      expect(quiet.output()).toMatch(/console \(sign-in link, works once within 600 s\): http:\/\/\S+\/#login=\S+/);
    } finally {
      await quiet.kill("SIGKILL");
    }
  });

  test("a flag typed before its command is refused, naming the command and the line with it in its place", () => {
    // Its value was read as the command ("unknown command \"1\""); between a group and its command it was dropped:
    // `tasks --json list` listed as text, `--verbose serve` started serve.
    const early = cli(["--http-port", "1", "serve"]);
    expect(early.code).toBe(1);
    expect(early.stderr.split("\n").slice(0, 2)).toEqual([
      "error: propeller: --http-port is an option of serve: it goes after it, as in propeller serve --http-port 1",
      "usage: propeller <command> [options]   (propeller help)",
    ]);
    expect(cli(["tasks", "--json", "list"]).stderr).toContain(
      '"error":"propeller tasks: --json is an option of tasks list: it goes after it, as in propeller tasks list --json"',
    );
    expect(cli(["--limit", "3", "tasks", "list"]).stderr).toStartWith(
      "error: propeller: --limit is an option of tasks list: it goes after it, as in propeller tasks list --limit 3\n",
    );
    // A secret in the line is not shown again (an admin token went to the terminal, its scrollback, a CI log).
    for (const words of [["--token", "ppt_secret-value"], ["--token=ppt_secret-value"]]) {
      const r = cli([...words, "tokens", "list"]);
      expect(r.stderr).toContain("--token is an option of tokens list");
      expect(r.stderr).not.toContain("ppt_secret-value");
    }
    const typo = cli(["tasks", "--jsn", "list"]);
    expect(typo.code).toBe(1);
    expect(typo.stderr.split("\n").slice(0, 2)).toEqual([
      "error: propeller tasks: unknown flag --jsn (did you mean --json?)",
      "usage: propeller tasks <command> [options]   (propeller help tasks)",
    ]);
    expect(cli(["--verbose", "serve"]).stderr).toStartWith("error: propeller: unknown flag --verbose\n");
    expect(cli(["--bogus"]).stderr).toStartWith("error: propeller: unknown flag --bogus\n");
  });

  test("help, version and completion; no colour when piped or with NO_COLOR", () => {
    const help = cli(["help", "tasks", "get"]);
    expect(help.stdout + help.stderr).toContain("USAGE propeller tasks get [OPTIONS] <ID>");
    expect(help.stdout + help.stderr).not.toContain(ESC);
    expect(cli(["tasks", "create", "--help"]).stdout).toContain(
      "EXAMPLES\n\n  propeller tasks create add --example add",
    );
    expect(cli(["--help"], { NO_COLOR: "true" }).stdout).not.toContain(ESC);
    expect(cli(["version"]).stdout).toMatch(/^\d+\.\d+\.\d+ \(commit /);
    for (const shell of ["bash", "zsh", "fish"]) expect(cli(["completion", shell]).stdout).toContain("__complete");
    expect(cli(["__complete", "tasks", "cr"]).stdout).toBe("create\n");
    expect(cli(["__complete", "tasks", "create", "--inp"]).stdout).toBe("--inputs\n");
  });

  test("a URL without a scheme is http; a broken pipe ends quietly; --json is always JSON", async () => {
    const env = { PROPELLER_TOKEN: tokenOf(s.url) };
    const bare = s.url.replace("http://", "");
    expect(cli(["tasks", "create", "t", "--example", "add", "--url", bare], env).code).toBe(0);
    const piped = Bun.spawnSync(["bash", "-c", `"${process.execPath}" "${MAIN}" tasks list --url ${bare} | head -1`], {
      env: { ...process.env, ...env },
    });
    expect(piped.stderr.toString()).toBe("");
    const created = JSON.parse(cli(["tasks", "create", "d", "--example", "add", "--url", bare, "--json"], env).stdout);
    const deleted = cli(["tasks", "delete", created.id, "--url", bare, "--json"], env);
    expect(JSON.parse(deleted.stdout)).toEqual({ ok: true });
  });

  test("a server that is not a Propeller manager is summarised, not printed", async () => {
    const other = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () =>
        new Response(`<html>${"x".repeat(5000)}</html>`, { status: 404, headers: { "content-type": "text/html" } }),
    });
    try {
      // Spawned without blocking: this process serves the page.
      const p = Bun.spawn([process.execPath, MAIN, "tasks", "list", "--url", `http://127.0.0.1:${other.port}`], {
        stderr: "pipe",
      });
      const r = { code: await p.exited, stderr: await new Response(p.stderr).text() };
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("answered with text/html (5013 bytes), not a Propeller manager's JSON");
      expect(r.stderr.length).toBeLessThan(400);
    } finally {
      other.stop(true);
    }
  });
});

describe("upstream's CLI surface", () => {
  test("upstream's command names and flags work: -m, view, -o/-l, --status, --tasks, --tasks-file, metrics, alive-history", () => {
    const env = { PROPELLER_TOKEN: tokenOf(s.url), PROPELLER_URL: "" };
    const up = (args: string[]) => cli(["-m", s.url, ...args], env);
    const created = JSON.parse(
      up([
        "tasks",
        "create",
        "add",
        "--example",
        "add",
        "--inputs",
        "1,2",
        "--kind",
        "standard",
        "--metadata",
        '{"team":"edge"}',
        "--json",
      ]).stdout,
    );
    expect(created.metadata).toEqual({ team: "edge" });
    expect(up(["tasks", "view", created.id]).stdout).toContain(created.id);
    expect(JSON.parse(up(["tasks", "list", "-o", "0", "-l", "1", "--json"]).stdout).limit).toBe(1);
    expect(JSON.parse(up(["tasks", "metrics", created.id]).stdout)).toEqual([]);
    const proplets = JSON.parse(up(["proplets", "list", "--status", "active", "--json"]).stdout);
    const local = proplets.proplets[0].id as string;
    expect(up(["proplets", "view", local]).stdout).toContain(local);
    expect(JSON.parse(up(["proplets", "alive-history", local]).stdout).length).toBeGreaterThan(0);
    const tasks = JSON.stringify([{ name: "add", inputs: ["1", "2"] }]);
    const job = up([
      "jobs",
      "create",
      "--name",
      "upstream-job",
      "--execution-mode",
      "sequential",
      "--tasks",
      tasks,
      "--json",
    ]);
    expect(JSON.parse(job.stdout)).toMatchObject({ name: "upstream-job", execution_mode: "sequential" });
    const both = up(["jobs", "create", "--name", "x", "--tasks", "[]", "--tasks-file", "f.json"]);
    expect(both.stderr).toContain("use either --tasks or --tasks-file, not both");
    expect(up(["jobs", "create", "--name", "x", "--tasks", "[]"]).stderr).toContain("at least one task is required");
  });
});
