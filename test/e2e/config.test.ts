import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, tempDir } from "../helpers.ts";

// A config file's mistakes are refused at start with the file, the section and the key named (and the nearest
// known key for a typo), by serve, by a proplet and by `config show` alike; nothing is written before.

function file(text: string): string {
  const f = join(tempDir(), "config.toml");
  writeFileSync(f, text);
  return f;
}

/** `serve --config F` on a data dir that does not exist yet: the refusal, and whether the dir was made. */
function serveWith(f: string) {
  const dir = join(tempDir(), "data");
  const r = cli(["serve", "--config", f, "--data-dir", dir, "--http-port", "0", "--mqtt-port", "0"]);
  return { ...r, wrote: existsSync(dir) };
}

describe("serve and config show refuse a config file's mistakes, naming file, section and key", () => {
  const cases: [string, string, (f: string) => string][] = [
    [
      "a key outside any section",
      'http_port = 7070\n[serve]\nhost = "127.0.0.1"\n',
      (f) => `http_port in ${f} is outside any section`,
    ],
    [
      "an unknown section",
      '[serv]\nhost = "127.0.0.1"\n',
      (f) => `unknown section [serv] in ${f} (did you mean [serve]?)`,
    ],
    [
      "a misspelt key",
      "[serve]\nhttp_prot = 7070\n",
      (f) => `unknown key http_prot in [serve] of ${f} (did you mean http_port?)`,
    ],
    [
      "a bad value",
      '[serve]\nlocal_max_tasks = "many"\n',
      (f) => `local_max_tasks in [serve] of ${f} must be an integer between 1 and 10000, got "many"`,
    ],
    ["a wrong type", '[serve]\nauth = "yes"\n', (f) => `auth in [serve] of ${f}: expected true or false`],
    ["a bad choice", '[serve]\nscheduler = "fastest"\n', (f) => `scheduler in [serve] of ${f} must be one of`],
    [
      "a log level that does not exist",
      '[serve]\nlog_level = "verbose"\n',
      (f) => `log_level in [serve] of ${f} must be one of silent, error, warn, info, debug, trace, got "verbose"`,
    ],
    [
      "a broker address without a scheme",
      '[serve]\nmqtt_url = "gateway:1883"\n',
      (f) => `mqtt_url in [serve] of ${f} must be a mqtt:// or mqtts://`,
    ],
  ];
  for (const [what, text, message] of cases) {
    test(what, () => {
      const f = file(text);
      const served = serveWith(f);
      expect(served.code).toBe(1);
      expect(served.stderr).toContain(`error: ${message(f)}`);
      expect(served.wrote).toBe(false);
      // config show goes through serve's own checks: the same refusal, the same exit code.
      const shown = cli(["config", "show", "--config", f]);
      expect(shown.code).toBe(1);
      expect(shown.stderr).toContain(`error: ${message(f)}`);
      expect(shown.stdout).toBe("");
    });
  }

  test("a --config file that does not exist; a flag's own bad value is named once, as the flag", () => {
    const r = serveWith("/nonexistent/propeller.toml");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--config /nonexistent/propeller.toml: no such file");
    const flag = cli(["serve", "--http-port", "70x", "--data-dir", join(tempDir(), "d")]);
    expect(flag.stderr).toContain('error: --http-port must be an integer between 0 and 65535, got "70x"');
    expect(flag.stderr).not.toContain("----");
  });
});

describe("config show", () => {
  test("masks a PostgreSQL password (file or environment) and shows where each value came from", () => {
    const f = file('[serve]\nstorage = "postgres"\npostgres_url = "postgres://prop:s3cret@db.example:5432/site"\n');
    const shown = cli(["config", "show", "--config", f, "--json"]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).not.toContain("s3cret");
    const rows = JSON.parse(shown.stdout).settings as { key: string; value: string; source: string }[];
    expect(rows.find((r) => r.key === "postgres_url")).toEqual({
      key: "postgres_url",
      value: "postgres://prop:****@db.example:5432/site",
      source: `${f} (postgres_url)`,
    });
    const env = cli(["config", "show", "--config", f], { PROPELLER_DB_URL: "postgresql://u:p%40ss@h/db?password=x" });
    expect(env.stdout).toContain("postgresql://u:****@h/db?password=****");
    expect(env.stdout).not.toContain("p%40ss");
  });
});

describe("a proplet's config file and section", () => {
  const provisioned =
    '[manager]\ntenant_id = "d"\nentity_id = "m"\napi_key = "km"\nchannel_id = "c"\n' +
    '[proplet1]\ntenant_id = "d"\nentity_id = "p1"\napi_key = "k1"\nchannel_id = "c"\n' +
    '[proplet2]\ntenant_id = "d"\nentity_id = "p2"\napi_key = "k2"\nchannel_id = "c"\n';
  // No broker listens at this address: a proplet that got past its settings would retry, not exit.
  const base = { PROPLET_MQTT_ADDRESS: "mqtt://127.0.0.1:9", PROPLET_ENTITY_ID: "", PROPLET_API_KEY: "" };

  test("a section that does not exist is refused, naming it, the file and the sections there are", () => {
    const f = file(provisioned);
    const r = cli(["proplet"], { ...base, PROPLET_CONFIG_FILE: f, PROPLET_CONFIG_SECTION: "proplet3" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no section [proplet3] in ${f}`);
    expect(r.stderr).toContain("sections: [manager], [proplet1], [proplet2]");
  });

  test("a file that does not exist is refused, as is a section with nowhere to come from", () => {
    const missing = cli(["proplet"], { ...base, PROPLET_CONFIG_FILE: "/nonexistent/config.toml" });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("PROPLET_CONFIG_FILE /nonexistent/config.toml: no such file");
    const section = Bun.spawnSync([process.execPath, join(import.meta.dir, "../../src/main.ts"), "proplet"], {
      cwd: tempDir(), // no config.toml here
      env: { ...process.env, ...base, PROPLET_CONFIG_SECTION: "proplet2", PROPLET_CONFIG_FILE: "" },
    });
    expect(section.exitCode).toBe(1);
    expect(section.stderr.toString()).toContain("PROPLET_CONFIG_SECTION proplet2: no config.toml to read it from");
  });

  test("a misspelt key in the section is refused with the nearest; config show --proplet shows the identity's source", () => {
    const f = file(`${provisioned}[proplet3]\ntenant_id = "d"\nentity_id = "p3"\napi_kee = "k3"\nchannel_id = "c"\n`);
    const r = cli(["proplet"], { ...base, PROPLET_CONFIG_FILE: f, PROPLET_CONFIG_SECTION: "proplet3" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`unknown key api_kee in [proplet3] of ${f} (did you mean api_key?)`);
    const shown = cli(["config", "show", "--proplet", "--json"], {
      ...base,
      PROPLET_CONFIG_FILE: f,
      PROPLET_CONFIG_SECTION: "proplet2",
    });
    expect(shown.code).toBe(0);
    const rows = JSON.parse(shown.stdout).settings as { key: string; value: string; source: string }[];
    expect(rows.find((x) => x.key === "entity_id")).toEqual({
      key: "entity_id",
      value: "p2",
      source: `${f} [proplet2] (entity_id)`,
    });
    expect(rows.find((x) => x.key === "api_key")?.value).toBe("(set, not shown)");
    expect(shown.stdout).not.toContain("k2");
  });
});
