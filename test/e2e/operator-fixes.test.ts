import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  b64,
  cli,
  envLines,
  FIXTURES,
  http,
  MAIN,
  type Proc,
  runTask,
  type Serve,
  spawnPropeller,
  spawnProplet,
  startRunning,
  startServe,
  tempDir,
  tokenOf,
  until,
  untilEnded,
} from "../helpers.ts";

// What an operator walking the README met (real serve and proplet processes): names are accepted wherever an id
// is, for proplets, their identities and tokens.

let s: Serve;
const procs: Proc[] = [];
let env: Record<string, string>;

beforeAll(async () => {
  s = await startServe();
  env = { PROPELLER_URL: s.url, PROPELLER_TOKEN: tokenOf(s.url) };
});

afterAll(async () => {
  for (const p of procs) await p.kill();
  await s?.kill();
});

describe("names where ids are taken", () => {
  test("proplets cordon|uncordon|drain|label|revoke edge-1 by name", async () => {
    const added = cli(["proplets", "add", "--name", "edge-1"], env);
    expect(added.code).toBe(0);
    const vars = envLines(added.stdout);
    const id = vars.PROPLET_ENTITY_ID!;
    procs.push(
      spawnPropeller(["proplet"], {
        PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
        PROPLET_FL_URL: `${s.url}/fl`,
        ...vars,
      }),
    );
    await until("edge-1 to register", async () => (await http(`${s.url}/proplets/edge-1`)).status === 200);
    for (const verb of ["cordon", "uncordon", "drain"]) {
      const r = cli(["proplets", verb, "edge-1"], env);
      expect(r.stderr).not.toContain("not found");
      expect(r.code).toBe(0);
    }
    const api = await http(`${s.url}/proplets/edge-1/cordon`, "POST");
    expect(api.status).toBe(200);
    expect(api.body).toMatchObject({ id, cordoned: true });
    const labelled = cli(["proplets", "label", "edge-1", "--label", "zone=a"], env);
    expect(labelled.stderr).toBe("");
    expect(labelled.code).toBe(0);
    const ents = await http<{ entities: { id: string; labels?: Record<string, string> }[] }>(`${s.url}/entities`);
    expect(ents.body.entities.find((e) => e.id === id)?.labels).toEqual({ zone: "a" });
    const revoked = cli(["proplets", "revoke", "edge-1"], env);
    expect(revoked.stderr).toBe("");
    expect(revoked.code).toBe(0);
    const after = await http<{ entities: { id: string; revoked_at?: string }[] }>(`${s.url}/entities`);
    expect(after.body.entities.find((e) => e.id === id)?.revoked_at).toBeTruthy();
  });

  test("tokens revoke NAME revokes the one token by that name; a shared name is refused naming the ids", async () => {
    expect(cli(["tokens", "create", "--role", "viewer", "--name", "ci-reader"], env).code).toBe(0);
    const r = cli(["tokens", "revoke", "ci-reader"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const list = await http<{ tokens: { name: string; revoked_at?: string }[] }>(`${s.url}/tokens`);
    expect(list.body.tokens.find((t) => t.name === "ci-reader")?.revoked_at).toBeTruthy();
    cli(["tokens", "create", "--role", "viewer", "--name", "twin"], env);
    cli(["tokens", "create", "--role", "viewer", "--name", "twin"], env);
    const twin = await http<{ error: string }>(`${s.url}/tokens/twin`, "DELETE");
    expect(twin.status).toBe(409);
    expect(twin.body.error).toContain("2 tokens are named twin");
  });

  test("tokens revoke: a name that is also the start of another token's id is refused, not taken as the id; it says what it revoked", async () => {
    const victim = JSON.parse(cli(["tokens", "create", "--role", "viewer", "--name", "victim", "--json"], env).stdout);
    const clash = victim.id.slice(0, 13);
    const made = JSON.parse(cli(["tokens", "create", "--role", "viewer", "--name", clash, "--json"], env).stdout);
    const r = cli(["tokens", "revoke", clash], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${clash} is the name of token ${made.id} and the start of token id ${victim.id}`);
    const list = await http<{ tokens: { id: string; revoked_at?: string }[] }>(`${s.url}/tokens`);
    expect(list.body.tokens.find((t) => t.id === victim.id)?.revoked_at).toBeUndefined();
    // An id's start alone, the whole id: it says which token it revoked.
    const byPrefix = cli(["tokens", "revoke", made.id.slice(0, 8)], env);
    expect(byPrefix.stderr).toBe("");
    expect(byPrefix.stdout).toStartWith(`revoked token ${made.id} (${clash}, viewer) at `);
    expect(cli(["tokens", "revoke", ""], env).stderr).toContain("empty");
    expect(cli(["workflows", "stop", ""], env).stderr).toContain("the workflow id is empty");
  });

  test("tokens revoke of the site's only admin token is refused, saying how (the site stays administrable)", () => {
    const r = cli(["tokens", "revoke", "admin"], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("is the last admin token");
    expect(r.stderr).toContain("--force");
    expect(cli(["tokens", "revoke", "--help"], env).stdout).toContain("--force");
    expect(cli(["tokens", "list"], env).code).toBe(0);
  });
});

describe("certs renew, then SIGHUP", () => {
  test("/metrics reports the renewed server certificate's expiry; renew says how to reload", async () => {
    const dir = tempDir();
    expect(cli(["certs", "create", "--host", "localhost", "--days", "30", "--dir", dir]).code).toBe(0);
    const t = await startServe({
      tlsCa: readFileSync(join(dir, "ca.pem"), "utf8"),
      extra: ["--tls-cert", join(dir, "server.pem"), "--tls-key", join(dir, "server.key"), "--no-local-proplet"],
    });
    procs.push(t);
    const expiry = async () => {
      const text = await (
        await fetch(`${t.url}/metrics`, {
          tls: { ca: readFileSync(join(dir, "ca.pem"), "utf8") },
          headers: { authorization: `Bearer ${t.token}` },
        })
      ).text();
      return Number(/propeller_certificate_expiry_seconds\{cert="server"\} (\S+)/.exec(text)?.[1]);
    };
    expect(await expiry()).toBeLessThan(31 * 86_400);
    const renewed = cli(["certs", "renew", "--dir", dir, "--days", "200"]);
    expect(renewed.code).toBe(0);
    expect(renewed.stderr).toContain("SIGHUP (systemctl reload propeller) or restart");
    t.proc.kill("SIGHUP");
    await until("the reload", () => t.output().includes("SIGHUP: reloaded"));
    expect(await expiry()).toBeGreaterThan(199 * 86_400);
  });
});

describe("restore into a new data dir", () => {
  test("serve on a restored kv store names no admin.token that is not there, and the site's admin token works", async () => {
    const a = await startServe({ extra: ["--no-local-proplet"] });
    const token = a.token!;
    await a.kill();
    const archive = join(tempDir(), "site.jsonl");
    expect(cli(["backup", archive, "--data-dir", a.dataDir]).code).toBe(0);
    const into = join(tempDir(), "new");
    expect(cli(["restore", archive, "--data-dir", into, "--storage", "kv"]).code).toBe(0);
    const b = await startServe({ dataDir: into, extra: ["--storage", "kv", "--no-local-proplet"] });
    procs.push(b);
    expect(existsSync(join(into, "admin.token"))).toBe(false);
    await until("the token line", () => b.output().includes("REST needs a bearer token"));
    expect(b.output()).not.toContain(join(into, "admin.token"));
    expect(b.output()).toContain("admin tokens came with its store");
    expect(b.output()).toContain(`propeller tokens create --data-dir ${into}`);
    const r = await fetch(`${b.url}/tasks`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
  });
});

describe("restore's files", () => {
  test("the restored store, the one --force sets aside, and a kv dir are the owner's only", async () => {
    const a = await startServe({ extra: ["--no-local-proplet"] });
    await a.kill();
    const archive = join(tempDir(), "site.jsonl");
    expect(cli(["backup", archive, "--data-dir", a.dataDir]).code).toBe(0);
    const mode = (p: string) => statSync(p).mode & 0o777;
    const into = join(tempDir(), "sq");
    expect(cli(["restore", archive, "--data-dir", into]).code).toBe(0);
    expect(mode(join(into, "propeller.db"))).toBe(0o600);
    // As an older restore left it: the copy --force sets aside is made private all the same.
    chmodSync(join(into, "propeller.db"), 0o644);
    expect(cli(["restore", archive, "--data-dir", into, "--force"]).code).toBe(0);
    const aside = readdirSync(into).filter((f) => f.startsWith("propeller.db.before-restore-"));
    expect(aside.length).toBeGreaterThan(0);
    for (const f of aside) expect(mode(join(into, f))).toBe(0o600);
    expect(mode(join(into, "propeller.db"))).toBe(0o600);
    const kv = join(tempDir(), "kv");
    expect(cli(["restore", archive, "--data-dir", kv, "--storage", "kv"]).code).toBe(0);
    expect(mode(join(kv, "kv"))).toBe(0o700);
    for (const f of readdirSync(join(kv, "kv"))) expect(mode(join(kv, "kv", f)) & 0o077).toBe(0);
  });
});

describe("a join token for a name", () => {
  test("refused at creation when the name is taken (409 naming the holder); a failed join spends no use", async () => {
    const holder = await http<{ id: string }>(`${s.url}/entities`, "POST", { kind: "proplet", name: "edge-2" });
    expect(holder.status).toBe(201);
    const made = cli(["proplets", "join-token", "--name", "edge-2"], env);
    expect(made.code).not.toBe(0);
    expect(made.stderr).toContain("409");
    expect(made.stderr).toContain(holder.body.id);
    // Taken between the token and the join: the join fails (409), the token keeps its use and works later.
    const t = await http<{ id: string; token: string }>(`${s.url}/join-tokens`, "POST", { name: "edge-3" });
    expect(t.status).toBe(201);
    const squatter = await http<{ id: string }>(`${s.url}/entities`, "POST", { kind: "proplet", name: "edge-3" });
    const join = () =>
      fetch(`${s.url}/join`, {
        method: "POST",
        body: JSON.stringify({ token: t.body.token }),
        headers: { "content-type": "application/json" },
      });
    expect((await join()).status).toBe(409);
    const listed = await http<{ join_tokens: { id: string; uses: number }[] }>(`${s.url}/join-tokens`);
    expect(listed.body.join_tokens.find((j) => j.id === t.body.id)?.uses).toBe(0);
    expect((await http(`${s.url}/entities/${squatter.body.id}`, "DELETE")).status).toBe(204);
    const ok = await join();
    expect(ok.status).toBe(201);
    expect(((await ok.json()) as { name: string }).name).toBe("edge-3");
  });
});

describe("serve's TLS files", () => {
  test("a swapped pair, another certificate's key and a CA as server certificate are refused naming flag and file, before anything is written", async () => {
    const one = tempDir();
    const two = tempDir();
    expect(cli(["certs", "create", "--host", "localhost", "--dir", one]).code).toBe(0);
    expect(cli(["certs", "create", "--host", "localhost", "--dir", two]).code).toBe(0);
    const cases: [string, string, string[]][] = [
      [join(one, "server.key"), join(one, "server.pem"), ["--tls-cert", "holds a private key, not a certificate"]],
      [join(one, "server.pem"), join(two, "server.key"), ["--tls-key", "is not the private key of the certificate"]],
      [join(one, "ca.pem"), join(one, "server.key"), ["is a CA certificate"]],
    ];
    for (const [cert, key, says] of cases) {
      const dir = join(tempDir(), "data");
      const r = cli([
        "serve",
        "--data-dir",
        dir,
        "--http-port",
        "0",
        "--mqtt-port",
        "0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
      ]);
      expect(r.code).not.toBe(0);
      for (const s of says) expect(r.stderr).toContain(s);
      expect(r.stderr).toContain(cert.includes("ca.pem") ? cert : key.includes(two) ? key : cert);
      expect(r.stderr).not.toContain("error:0");
      expect(existsSync(join(dir, "propeller.db"))).toBe(false);
      expect(existsSync(join(dir, "admin.token"))).toBe(false);
    }
  });
});

describe("install and uninstall", () => {
  test("install --dry-run from source refuses as the real run does; uninstall of a unit not installed says so", () => {
    const root = join(tempDir(), "image");
    const dry = cli(["install", "--root", root, "--dry-run"]);
    expect(dry.code).not.toBe(0);
    expect(dry.stderr).toContain("install from the compiled binary");
    expect(dry.stdout).not.toContain("would copy");
    const un = cli(["uninstall", "--root", tempDir()]);
    expect(un.code).toBe(0);
    expect(un.stderr).toContain("propeller.service is not installed");
    expect(un.stdout).not.toContain("remove");
  });
});

describe("a serve with another --data-dir", () => {
  test("the CLI's 401 names PROPELLER_DATA_DIR and --token; with PROPELLER_DATA_DIR it finds the token", () => {
    const home = tempDir();
    const refused = cli(["tasks", "list"], { PROPELLER_URL: s.url, PROPELLER_TOKEN: "", PROPELLER_DATA_DIR: home });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("401");
    expect(refused.stderr).toContain("set PROPELLER_DATA_DIR to it, or give --token");
    const ok = cli(["tasks", "list"], { PROPELLER_URL: s.url, PROPELLER_TOKEN: "", PROPELLER_DATA_DIR: s.dataDir });
    expect(ok.code).toBe(0);
  });

  test("the 401 says whether the admin token file was missing or was sent and refused, and what to do", () => {
    // A data dir with no admin.token: a restored store (its tokens came in the archive) or the wrong dir.
    const empty = tempDir();
    const none = cli(["tasks", "list"], { PROPELLER_URL: s.url, PROPELLER_TOKEN: "", PROPELLER_DATA_DIR: empty });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain(`looked for serve's admin token in ${join(empty, "admin.token")}: there is none`);
    expect(none.stderr).toContain(`propeller tokens create --data-dir ${empty}`);
    expect(none.stderr).not.toContain("keeps its admin token in");
    // One there, but another site's: it was sent, and the manager refused it.
    const other = tempDir();
    writeFileSync(join(other, "admin.token"), "ppt_not-this-sites-token\n");
    const wrong = cli(["tasks", "list"], { PROPELLER_URL: s.url, PROPELLER_TOKEN: "", PROPELLER_DATA_DIR: other });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain(`sent the admin token in ${join(other, "admin.token")} and it was refused`);
  });
});

describe("an empty data dir", () => {
  test("serve --data-dir= and migrate --data-dir= are refused naming the flag", () => {
    const r = cli(["serve", "--data-dir=", "--http-port", "0", "--mqtt-port", "0"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("--data-dir is empty");
    expect(r.stderr).not.toContain("ENOENT");
    const b = cli(["migrate", "--dry-run", "--data-dir="]);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toContain("--data-dir is empty");
  });
});

describe("a data dir of the other storage kind", () => {
  test("serve with the wrong --storage is refused naming the kind the dir holds; its admin token is left alone", async () => {
    // Before: a new empty sqlite store beside the kv one, and a new admin token written over the site's.
    const a = await startServe({ extra: ["--storage", "kv", "--no-local-proplet"] });
    await a.kill("SIGTERM");
    const token = readFileSync(join(a.dataDir, "admin.token"), "utf8");
    const r = cli(["serve", "--data-dir", a.dataDir, "--http-port", "0", "--mqtt-port", "0", "--no-local-proplet"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `${a.dataDir} holds a kv store (${join(a.dataDir, "kv")}), not a sqlite one: start with --storage kv`,
    );
    expect(existsSync(join(a.dataDir, "propeller.db"))).toBe(false);
    expect(readFileSync(join(a.dataDir, "admin.token"), "utf8")).toBe(token);
    const backup = cli(["backup", join(tempDir(), "x.tar"), "--data-dir", a.dataDir]);
    expect(backup.code).not.toBe(0);
    expect(backup.stderr).toContain("no sqlite store");
  });
});

describe("a field's name typed wrong", () => {
  test("is refused naming the field meant, in tasks, jobs and workflows (YAML too); fields of upstream's own pass", async () => {
    // Before: ignored. A workflow task with depend_on ran at once; execution-mode became parallel.
    const post = (path: string, body: string, type = "application/json") =>
      fetch(`${s.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokenOf(s.url)}`, "content-type": type },
        body,
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: string } }));
    const wf = ["tasks:", "  - {id: ta, name: add, file: x}", "  - {id: tb, name: add, file: x, depend_on: [ta]}"].join(
      "\n",
    );
    expect(await post("/workflows", wf, "application/yaml")).toEqual({
      status: 400,
      body: { error: "tasks.1.depend_on: not a field (did you mean depends_on?)" },
    });
    const job = JSON.stringify({ name: "j", "execution-mode": "sequential", tasks: [{ name: "add", file: "x" }] });
    expect((await post("/jobs", job)).body.error).toBe("execution-mode: not a field (did you mean execution_mode?)");
    const task = JSON.stringify({ name: "add", file: b64("add"), inptus: [1, 2] });
    expect((await post("/tasks", task)).body.error).toBe("inptus: not a field (did you mean inputs?)");
    // An upstream client's own fields, and ones far from any field, are ignored as before.
    const theirs = JSON.stringify({ name: "add", file: b64("add"), inputs: [1, 2], id: "x", state: 0, colour: "blue" });
    expect((await post("/tasks", theirs)).status).toBe(201);
  });
});

describe("tasks results", () => {
  test("exits 1 and says why unless the task Completed; a failed task's partial output is still printed", async () => {
    const ok = await runTask(s.url, { name: "add", file: b64("add"), inputs: [2, 3] });
    const r = cli(["tasks", "results", ok.id], env);
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "5\n", err: "" });
    const failed = await runTask(s.url, { name: "fail", file: b64("fail") });
    const f = cli(["tasks", "results", failed.id], env);
    expect(f.code).toBe(1);
    expect(f.stdout).toBe("partial output\n");
    expect(f.stderr).toBe(
      `task ${failed.id} is Failed: exit code 3: something went wrong (what it printed is above)\n`,
    );
  });
});

describe("a graceful stop", () => {
  test("serve with a proplet connected stops in under a second, says so, and a new serve starts on its data dir", async () => {
    const a = await startServe({ extra: ["--no-local-proplet"] });
    const p = await spawnProplet(a, "edge-stop");
    procs.push(p);
    await until("the proplet to register", () => a.output().includes("edge-stop registered"));
    const t0 = Date.now();
    a.proc.kill("SIGTERM");
    await a.proc.exited;
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(1000);
    expect(a.output()).toMatch(/stopped \(\d+ ms\)/);
    const b = await startServe({ dataDir: a.dataDir, extra: ["--no-local-proplet"] });
    procs.push(b);
  });
});

describe("a proplet's data dir", () => {
  test("data_dir in [proplet] is refused naming PROPLET_DATA_DIR; config show --proplet lists the data dir", () => {
    const file = join(tempDir(), "config.toml");
    writeFileSync(file, `[proplet]\ndata_dir = "/srv/edge"\n`);
    const r = cli(["proplet"], { PROPLET_CONFIG_FILE: file, PROPLET_DATA_DIR: tempDir() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown key data_dir");
    expect(r.stderr).toContain("PROPLET_DATA_DIR");
    const dir = tempDir();
    const shown = cli(["config", "show", "--proplet", "--json"], { PROPLET_DATA_DIR: dir });
    expect(shown.code).toBe(0);
    const rows = JSON.parse(shown.stdout).settings as { key: string; value: string; source: string }[];
    expect(rows.find((r) => r.key === "data_dir")).toEqual({
      key: "data_dir",
      value: dir,
      source: "env PROPLET_DATA_DIR",
    });
  });
});

describe("a revoked proplet", () => {
  test("its running task ends at once saying so, not after the partition grace", async () => {
    const a = await startServe({ extra: ["--no-local-proplet"] });
    procs.push(a);
    const p = await spawnProplet(a, "edge-gone");
    procs.push(p);
    await until("it registers", async () => (await http(`${a.url}/proplets/edge-gone`)).body.alive === true, 20_000);
    const t = await startRunning(a.url, { name: "ticker", file: b64("ticker"), inputs: [600, 100] });
    const t0 = Date.now();
    expect((await http(`${a.url}/entities/edge-gone`, "DELETE")).status).toBe(204);
    const ended = await untilEnded(a.url, t.body.id, "the task to end with its revoked proplet");
    expect({ state: ended.state, error: ended.error }).toEqual({
      state: 4,
      error: "proplet lost: edge-gone was revoked",
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await http(`${a.url}/proplets/edge-gone`)).body.alive).toBe(false);
  });

  test("its refusal says the identity may have been revoked", async () => {
    const p = await spawnProplet(s, "edge-revoked");
    procs.push(p);
    await until("it registers", async () => (await http(`${s.url}/proplets/edge-revoked`)).status === 200);
    expect((await http(`${s.url}/entities/edge-revoked`, "DELETE")).status).toBe(204);
    await until("the refusal", () => p.output().includes("may have been revoked"), 15_000);
  });
});

describe("tasks create --start --wait", () => {
  test("serve gone mid-wait: the error names the task's id", async () => {
    const a = await startServe();
    const wait = Bun.spawn(
      // A serve that does not come back within the wait's own timeout ends it (one restarting is waited for).
      [
        ...[process.execPath, MAIN, "tasks", "create", "spin", "--file", join(FIXTURES, "spin.wasm")],
        ...["--start", "--wait", "--wait-timeout", "3"],
      ],
      { env: { ...process.env, PROPELLER_URL: a.url, PROPELLER_TOKEN: a.token! }, stdout: "pipe", stderr: "pipe" },
    );
    const id = await until("the task to run", async () => {
      const r = await http<{ tasks: { id: string; state: number }[] }>(`${a.url}/tasks`);
      return r.body.tasks.find((t) => t.state === 2)?.id;
    });
    await a.kill("SIGKILL");
    expect(await wait.exited).not.toBe(0);
    const err = await new Response(wait.stderr).text();
    expect(err).toContain(`while waiting for task ${id}`);
  });

  test("serve restarting mid-wait (kill -9, back in a second): the wait goes on and ends with the task's result", async () => {
    // Before: `cannot reach the manager … ECONNREFUSED`, exit 1, though the task completed on its proplet.
    const a = await startServe({ extra: ["--no-local-proplet"] });
    const p = await spawnProplet(a, "edge-steady");
    procs.push(p);
    await until("it registers", async () => (await http(`${a.url}/proplets/edge-steady`)).body.alive === true, 20_000);
    const wait = Bun.spawn(
      [
        ...[process.execPath, MAIN, "tasks", "create", "tick", "--file", join(FIXTURES, "ticker.wasm")],
        ...["--inputs", "30,100", "--proplet-id", "edge-steady", "--start", "--wait"],
      ],
      { env: { ...process.env, PROPELLER_URL: a.url, PROPELLER_TOKEN: a.token! }, stdout: "pipe", stderr: "pipe" },
    );
    const id = await until("the task to run", async () => {
      const r = await http<{ tasks: { id: string; state: number }[] }>(`${a.url}/tasks`);
      return r.body.tasks.find((t) => t.state === 2)?.id;
    });
    const follow = Bun.spawn([process.execPath, MAIN, "tasks", "logs", id, "--follow"], {
      env: { ...process.env, PROPELLER_URL: a.url, PROPELLER_TOKEN: a.token! },
      stdout: "pipe",
      stderr: "pipe",
    });
    await Bun.sleep(500);
    await a.kill("SIGKILL");
    await Bun.sleep(1000);
    const b = await startServe({
      dataDir: a.dataDir,
      ports: { http: a.httpPort, mqtt: a.mqttPort },
      extra: ["--no-local-proplet"],
    });
    procs.push(b);
    expect(await wait.exited).toBe(0);
    const err = await new Response(wait.stderr).text();
    expect(err).toContain("still waiting for task");
    expect(await new Response(wait.stdout).text()).toContain("tick 30");
    // `tasks logs --follow` too: its stream cut, it waits for the task's end, which decides its exit.
    expect(await follow.exited).toBe(0);
    expect(await new Response(follow.stderr).text()).toContain(`the log stream was cut`);
  }, 60_000);
});

describe("environment variables that look like propeller's", () => {
  test("serve and a proplet say which one is misspelt and what was meant; a proplet takes upstream's PROPLET_MQTT_KEEP_ALIVE", async () => {
    const typo = await startServe({ env: { PROPELLER_HTTP_PROT: "27070", PROPELLER_LOGLEVEL: "debug" } });
    try {
      expect(typo.output()).toContain(
        "environment: PROPELLER_HTTP_PROT is not a setting propeller reads: ignored (did you mean PROPELLER_HTTP_PORT?)",
      );
      expect(typo.output()).toContain("(did you mean PROPELLER_LOG_LEVEL?)");
    } finally {
      await typo.kill();
    }
    // Upstream's name for the keep-alive is read: a bad value is refused naming it (it was ignored).
    const bad = await spawnProplet(s, "kept-alive", { PROPLET_MQTT_KEEP_ALIVE: "soon", PROPLET_MQTT_ADRESS: "x" });
    procs.push(bad);
    expect(await bad.proc.exited).not.toBe(0);
    expect(bad.output()).toContain('PROPLET_MQTT_KEEP_ALIVE must be an integer between 1 and 3600, got "soon"');
    const p = await spawnProplet(s, "kept-alive-2", { PROPLET_MQTT_KEEP_ALIVE: "15", PROPLET_MQTT_ADRESS: "x" });
    procs.push(p);
    // A near miss of a setting that protects refuses the start: the proplet would run every module unchecked.
    const open = await spawnProplet(s, "kept-alive-3", { PROPLET_TRUST_POLCY: "/etc/propeller/policy.json" });
    procs.push(open);
    expect(await open.proc.exited).not.toBe(0);
    expect(open.output()).toContain(
      "PROPLET_TRUST_POLCY is not a setting propeller reads (did you mean PROPLET_TRUST_POLICY?)",
    );
    await until("the proplet's warning", async () =>
      p
        .output()
        .includes("PROPLET_MQTT_ADRESS is not a setting propeller reads: ignored (did you mean PROPLET_MQTT_ADDRESS?)"),
    );
  });
});

describe("jobs create --start whose start is refused", () => {
  test("says the job was made and waits, and how to go on (it said only the start's error)", async () => {
    const r = cli(["jobs", "create", "--name", "nomodule", "--tasks", '[{"name":"a"}]', "--start"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/job [0-9a-f-]{36} was created but did not start: .*no module/);
    expect(r.stderr).toContain("propeller tasks update");
    const id = /job ([0-9a-f-]{36})/.exec(r.stderr)![1]!;
    expect((await http(`${s.url}/jobs/${id}`)).body.status).toBe("Pending");
  });
});

describe("jobs and workflows by name", () => {
  test("jobs get NAME and workflows stop NAME find the one group of that name; a name two share is refused naming both", async () => {
    const job = (await http(`${s.url}/jobs`, "POST", { name: "nightly-report", tasks: [{ name: "a" }] })).body;
    const got = cli(["jobs", "get", "nightly-report", "--json"], env);
    expect(got.stderr).toBe("");
    expect(JSON.parse(got.stdout).job_id).toBe(job.job_id);
    const one = (await http(`${s.url}/jobs`, "POST", { name: "twice", tasks: [{ name: "a" }] })).body;
    const two = (await http(`${s.url}/jobs`, "POST", { name: "twice", tasks: [{ name: "a" }] })).body;
    const amb = cli(["jobs", "get", "twice"], env);
    expect(amb.code).toBe(1);
    expect(amb.stderr).toContain("job id twice is ambiguous: 2 jobs have that name or an id starting with it");
    expect(amb.stderr).toContain(one.job_id);
    expect(amb.stderr).toContain(two.job_id);
    const wf = (
      await http(`${s.url}/workflows`, "POST", { name: "etl", tasks: [{ id: `etl-${Date.now()}`, name: "a" }] })
    ).body;
    expect(cli(["workflows", "stop", "etl"], env).code).toBe(0);
    expect((await http(`${s.url}/workflows/${wf.workflow_id}`)).body.status).toBe("Interrupted");
  });
});
