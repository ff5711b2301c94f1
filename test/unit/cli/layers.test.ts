import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Layers } from "../../../src/cli/layers.ts";
import { tempDir } from "../../helpers.ts";

// Settings in layers: the environment over the config file over the default, each value with its source, and a
// file's unknown keys and wrong types refused with the key named.

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
});

function file(text: string): string {
  const f = join(tempDir(), "config.toml");
  writeFileSync(f, text);
  return f;
}

describe("settings layers", () => {
  test("environment over file over default, with sources; upstream's tenant_id names the domain", () => {
    const f = file(
      '[proplet]\nmqtt_address = "mqtt://gw:1883"\nmax_tasks = 3\ntenant_id = "site-9"\n[serve]\nhost = "x"\n',
    );
    process.env.PROPLET_MAX_TASKS = "5";
    const L = new Layers("proplet", ["--config", f], { tenant_id: "domain_id" });
    expect(L.text("mqtt-address", ["PROPLET_MQTT_ADDRESS"], "mqtt://localhost:1883")).toBe("mqtt://gw:1883");
    expect(L.text("max-tasks", ["PROPLET_MAX_TASKS"], "2")).toBe("5");
    expect(L.text("domain-id", ["PROPLET_DOMAIN_ID"])).toBe("site-9");
    expect(L.text("runtime", ["PROPLET_RUNTIME"], "inprocess")).toBe("inprocess");
    expect(L.resolved.get("mqtt-address")?.source).toBe(`${f} (mqtt_address)`);
    expect(L.resolved.get("max-tasks")?.source).toBe("env PROPLET_MAX_TASKS");
    expect(L.resolved.get("runtime")?.source).toBe("default");
    expect(L.label("mqtt-address")).toBe(`mqtt_address in [proplet] of ${f}`);
    expect(L.label("max-tasks")).toBe("PROPLET_MAX_TASKS");
    expect(() => L.check()).not.toThrow();
  });

  test("unknown keys, wrong types and a missing file are refused, naming them", () => {
    const f = file('[serve]\nhttp_port = 7070\nhttp_prot = 1\nauth = "yes"\n');
    const L = new Layers("serve", ["--config", f]);
    L.text("http-port", ["PROPELLER_HTTP_PORT"], "7070");
    L.bool("auth", "PROPELLER_AUTH", true);
    expect(() => L.check()).toThrow(`unknown key http_prot in [serve] of ${f}`);
    expect(() => L.check()).toThrow(`auth in [serve] of ${f}: expected true or false`);
    const missing = new Layers("serve", ["--config", "/nonexistent.toml"]);
    expect(() => missing.check()).toThrow("--config /nonexistent.toml: no such file");
    const broken = new Layers("serve", ["--config", file("[serve\n")]);
    expect(() => broken.check()).toThrow("config.toml");
  });
});

describe("a config file's shape", () => {
  test("keys outside a section and unknown sections are named; provision's sections are known", async () => {
    const { sectionProblems } = await import("../../../src/cli/layers.ts");
    expect(sectionProblems({ serve: {}, proplet: {}, proplet12: {}, manager: {}, proxy: {} }, "f.toml")).toEqual([]);
    const p = sectionProblems({ http_port: 1, prolpet: {} }, "f.toml");
    expect(p[0]).toBe("http_port in f.toml is outside any section: put it under [serve] or [proplet]");
    expect(p[1]).toStartWith("unknown section [prolpet] in f.toml (did you mean [proplet]?)");
  });

  test("config show hides passwords inside URLs, and only there", async () => {
    const { masked } = await import("../../../src/cli/config.ts");
    expect(masked("postgres://prop:s3cr@t@db:5432/site")).toBe("postgres://prop:****@db:5432/site");
    expect(masked("mqtt://u:p@gw:1883")).toBe("mqtt://u:****@gw:1883");
    expect(masked("postgres://db/site?sslmode=require&password=x")).toBe(
      "postgres://db/site?sslmode=require&password=****",
    );
    expect(masked("postgres://prop@db/site")).toBe("postgres://prop@db/site");
    expect(masked("a:b@c")).toBe("a:b@c");
  });
});
