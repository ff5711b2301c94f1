import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as openpgp from "openpgp";
import {
  cli,
  FIXTURES,
  http,
  propletEnv,
  type Serve,
  spawnPropeller,
  startServe,
  tempDir,
  tokenOf,
  until,
} from "../helpers.ts";
import { type Registry, startRegistry } from "../registry.ts";

// An operator's first hour with signing (docs/ARCHITECTURE.md, "Trusted code"), the mistakes a person makes:
// each is refused saying what was wrong, and before anything is left in the registry.

const dir = tempDir("operator-hour-");
const PASS = "operator passphrase";
let registry: Registry;
let s: Serve;
const on = () => ["--url", s.url, "--token", tokenOf(s.url)];

const tags = async (repo: string) => {
  const r = await fetch(`http://${registry.host}/v2/${repo}/tags/list`);
  return r.status === 404 ? [] : (((await r.json()) as { tags?: string[] }).tags ?? []);
};

beforeAll(async () => {
  expect(
    cli(["keys", "create", "--output-key-prefix", join(dir, "site")], { PROPELLER_KEY_PASSPHRASE: PASS }).code,
  ).toBe(0);
  registry = await startRegistry();
  s = await startServe();
});
afterAll(async () => {
  registry?.proc.kill("SIGKILL");
  await s?.kill("SIGKILL");
});

describe("push --sign-key with the wrong file", () => {
  test("the public key instead of the private one: refused, nothing pushed", async () => {
    const r = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      `${registry.host}/apps/pub:v1`,
      "--sign-key",
      join(dir, "site.pub"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("site.pub: a public key; signing needs the private one");
    expect(await tags("apps/pub")).toEqual([]);
  });

  test("a file that is no key: refused, nothing pushed", async () => {
    writeFileSync(join(dir, "notes.asc"), "not a key\n");
    const r = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      `${registry.host}/apps/junk:v1`,
      "--sign-key",
      join(dir, "notes.asc"),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("neither an armored OpenPGP private key nor a PEM one");
    expect(await tags("apps/junk")).toEqual([]);
  });

  test("the wrong passphrase: refused, nothing pushed; the right one signs", async () => {
    const ref = `${registry.host}/apps/add:v1`;
    const bad = cli(["push", join(FIXTURES, "add.wasm"), ref, "--sign-key", join(dir, "site.key")], {
      PROPELLER_KEY_PASSPHRASE: "typo",
    });
    expect(bad.stderr).toContain("wrong passphrase");
    expect(await tags("apps/add")).toEqual([]);
    const good = cli(["push", join(FIXTURES, "add.wasm"), ref, "--sign-key", join(dir, "site.key")], {
      PROPELLER_KEY_PASSPHRASE: PASS,
    });
    expect(good.code).toBe(0);
    expect(good.stdout).toContain("signed by");
  });
});

describe("keys create into a directory that does not exist", () => {
  test("names the directory, writes nothing", () => {
    const r = cli(["keys", "create", "--output-key-prefix", join(dir, "no-such-dir", "site")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(dir, "no-such-dir")} is not a directory`);
  });
});

describe("a proplet's trust policy put in the config file", () => {
  test("config show and the proplet say it is read from PROPLET_TRUST_POLICY", () => {
    const file = join(dir, "proplet.toml");
    writeFileSync(file, `[proplet]\ntrust_policy = "${join(dir, "policy.json")}"\n`);
    const shown = cli(["config", "show", "--proplet", "--config", file]);
    expect(shown.stderr).toContain("a proplet reads it from the env var PROPLET_TRUST_POLICY");
    const run = cli(["proplet"], { PROPLET_CONFIG_FILE: file, PROPLET_MQTT_ADDRESS: "mqtt://127.0.0.1:1" });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("a proplet reads it from the env var PROPLET_TRUST_POLICY");
  });
});

describe("verify with a policy that has a mistake", () => {
  test('a misspelt "transports" is refused, not read as "accept anything"', () => {
    writeFileSync(
      join(dir, "typo.json"),
      JSON.stringify({
        default: [{ type: "insecureAcceptAnything" }],
        transport: { docker: { [`${registry.host}/apps`]: [{ type: "sigstoreSigned", keyPath: "site.pub" }] } },
      }),
    );
    const r = cli(["verify", `${registry.host}/apps/add:v1`, "--trust-policy", join(dir, "typo.json")]);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("accepted");
    expect(r.stderr).toContain('unknown key "transport" at the top level');
  });
});

describe("verify with the cosign key under signedBy", () => {
  test("the error names the policy, the key file, and where a PEM key belongs", () => {
    writeFileSync(
      join(dir, "gpg-rule.json"),
      JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: "site.pub" }] }),
    );
    const r = cli(["verify", `${registry.host}/apps/add:v1`, "--trust-policy", join(dir, "gpg-rule.json")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`trust policy ${join(dir, "gpg-rule.json")}: signedBy keyPath site.pub: not an OpenPGP`);
    expect(r.stderr).toContain("for a sigstoreSigned requirement");
  });
});

describe("propeller proxy with half an identity", () => {
  test("PROXY_ENTITY_ID without PROXY_API_KEY: refused at once, naming the missing variable", () => {
    const t0 = Date.now();
    const r = cli(["proxy", "--mqtt-url", "mqtt://127.0.0.1:1", "--data-dir", join(dir, "proxy")], {
      PROXY_ENTITY_ID: "3f2a",
      PROXY_API_KEY: "",
      PROXY_CONFIG_FILE: join(dir, "none.toml"),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("PROXY_API_KEY is not set");
    expect(Date.now() - t0).toBeLessThan(8_000); // not the 10 s wait for a broker that would refuse it anyway
  });

  test("proplet --help names its state dir, where the run record lives", () => {
    expect(cli(["proplet", "--help"]).stdout).toContain("PROPLET_DATA_DIR: its state dir");
  });

  test("--help says where its identity comes from", () => {
    const r = cli(["proxy", "--help"]);
    expect(r.stdout).toContain("PROXY_ENTITY_ID and PROXY_API_KEY");
    expect(r.stdout).toContain("provision add-proxy");
  });
});

describe("tasks clone, as a person types it", () => {
  test("--start --wait prints the copy's result; --unset takes the flag's name and says which names exist", () => {
    const made = cli(["tasks", "create", "add", "--example", "add", "--inputs", "1,2", "--timeout", "30", ...on()]);
    expect(made.code).toBe(0);
    const id = made.stdout.match(/[0-9a-f-]{36}/)![0];
    const copy = cli(["tasks", "clone", id, "--inputs", "20,22", "--unset", "timeout", "--start", "--wait", ...on()]);
    expect(copy.stderr).toBe("");
    expect(copy.stdout.trim()).toBe("42");
    const typo = cli(["tasks", "clone", id, "--unset", "timeout,schedul", ...on()]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain("--unset schedul: not a task field (did you mean schedule?)");
    expect(cli(["tasks", "clone", id, "--wait", ...on()]).stderr).toContain("give --start too");
  });
});

describe("workflows with names", () => {
  test("create and get print the workflow's name, as workflows list does", () => {
    const spec = join(dir, "wf.json");
    writeFileSync(
      spec,
      JSON.stringify({
        name: "nightly report",
        tasks: [{ id: "sum", name: "add", file: join(FIXTURES, "add.wasm"), inputs: [1, 2] }],
      }),
    );
    const made = cli(["workflows", "create", spec, ...on()]);
    expect(made.stderr).toBe("");
    expect(made.stdout).toMatch(/^name +nightly report$/m);
    const id = /workflow_id +(\S+)/.exec(made.stdout)![1]!;
    expect(cli(["workflows", "get", id, ...on()]).stdout).toMatch(/^name +nightly report$/m);
    // `file: NAME.wasm` is read as the local file it names (it was sent as if base64: "must be standard base64").
    // A file_path that is not there is named with its task.
    writeFileSync(spec, JSON.stringify({ name: "gone", tasks: [{ id: "g", name: "add", file_path: "gone.wasm" }] }));
    const gone = cli(["workflows", "create", spec, ...on()]);
    expect(gone.stderr).toContain(`tasks[0].file_path ${join(dir, "gone.wasm")}: ENOENT`);
  });
});

describe("tasks runs", () => {
  test("names the proplet as tasks list does, not by its id", async () => {
    const started = cli(["tasks", "create", "add", "--example", "add", "--inputs", "2,3", "--start", ...on()]);
    const id = started.stdout.trim();
    const local = (await http(`${s.url}/proplets`)).body.proplets[0] as { id: string; name: string };
    const runs = await until("the run to be listed", () => {
      const r = cli(["tasks", "runs", id, ...on()]);
      return r.stdout.includes("Completed") ? r.stdout : undefined;
    });
    expect(runs).toContain(` ${local.name} `);
    expect(runs).not.toContain(local.id);
  });
});

describe("a proplet given its id but not its API key", () => {
  test("the warning says no API key was given, not that the key is wrong", async () => {
    const { PROPLET_ENTITY_ID } = await propletEnv(s.url, "edge-no-key");
    const p = spawnPropeller(["proplet"], {
      PROPLET_ENTITY_ID: PROPLET_ENTITY_ID!,
      PROPLET_API_KEY: "",
      PROPLET_MQTT_ADDRESS: `mqtt://127.0.0.1:${s.mqttPort}`,
    });
    try {
      await until("the proplet's warning", () => p.output().includes("Not authorized"));
      expect(p.output()).toContain(`no API key was given with the id ${PROPLET_ENTITY_ID}`);
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    } finally {
      await p.kill("SIGKILL");
    }
  });
});

describe("SIGHUP after a bad edit of serve's trust policy", () => {
  test("the log says once that it was not reloaded, never that it was", async () => {
    const policy = join(dir, "serve-policy.json");
    writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const t = await startServe({ extra: ["--trust-policy", policy] });
    try {
      writeFileSync(policy, JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: "gone.pub" }] }));
      t.proc.kill("SIGHUP");
      await until("the refusal to reload", () => t.output().includes("trust policy not reloaded"));
      expect(t.output()).not.toContain("reloaded trust policy");
      expect(t.output()).toContain(`reading trust policy ${policy} again (its outcome follows)`);
      expect((await fetch(`${t.url}/health`)).status).toBe(200);
    } finally {
      await t.kill("SIGKILL");
    }
  });
});

describe("a GPG policy with --registries-d mistyped", () => {
  test("the refusal says where it looked for signatures and that the directory does not exist", async () => {
    const k = await openpgp.generateKey({
      type: "ecc",
      curve: "ed25519Legacy",
      userIDs: [{ name: "site" }],
      format: "armored",
    });
    writeFileSync(join(dir, "gpg.asc"), k.privateKey);
    writeFileSync(join(dir, "gpg.pub"), k.publicKey);
    const regD = join(dir, "registries.d");
    mkdirSync(regD);
    writeFileSync(
      join(regD, "site.yaml"),
      `docker:\n  ${registry.host}:\n    lookaside: file://${join(dir, "sigs")}\n`,
    );
    const ref = `${registry.host}/gpg/add:v1`;
    const pushed = cli([
      "push",
      join(FIXTURES, "add.wasm"),
      ref,
      "--sign-key",
      join(dir, "gpg.asc"),
      "--registries-d",
      regD,
    ]);
    expect(pushed.code).toBe(0);
    writeFileSync(
      join(dir, "gpg-policy.json"),
      JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPath: "gpg.pub" }] }),
    );
    const verify = (d: string) =>
      cli(["verify", ref, "--trust-policy", join(dir, "gpg-policy.json"), "--registries-d", d]);
    expect(verify(regD).stdout).toStartWith("accepted:");
    const typo = verify(join(dir, "registries"));
    expect(typo.code).toBe(1);
    expect(typo.stdout).toContain(
      `(no lookaside for ${registry.host}/gpg/add in registries.d ${join(dir, "registries")}, which does not exist)`,
    );
  });
});

describe("an inline module signed with openssl, as the docs say", () => {
  test("the DER openssl writes runs as cosign's base64 does; unsigned is refused", async () => {
    writeFileSync(
      join(dir, "inline-policy.json"),
      JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: "site.pub" }] }),
    );
    const t = await startServe({ extra: ["--trust-policy", join(dir, "inline-policy.json")] });
    try {
      const module = join(FIXTURES, "add.wasm");
      const der = join(dir, "add.sig.der");
      const made = Bun.spawnSync([
        "openssl",
        "dgst",
        "-sha256",
        "-sign",
        join(dir, "site.key"),
        "-passin",
        `pass:${PASS}`,
        "-out",
        der,
        module,
      ]);
      expect(made.exitCode).toBe(0);
      const run = (sig: string[]) =>
        cli([
          "tasks",
          "create",
          "add",
          "--file",
          module,
          ...sig,
          "--inputs",
          "4,5",
          "--start",
          "--wait",
          "--url",
          t.url,
          "--token",
          tokenOf(t.url),
        ]);
      const signed = run(["--signature", der]);
      expect(signed.stderr).toBe("");
      expect(signed.stdout.trim()).toBe("9");
      expect(run([]).stderr).toContain("requires a signature by key");
    } finally {
      await t.kill("SIGKILL");
    }
  });
});
