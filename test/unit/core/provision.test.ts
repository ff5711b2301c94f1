import { describe, expect, test } from "bun:test";
import { pbkdf2Sync } from "node:crypto";
import {
  addProplets,
  mosquittoAcl,
  mosquittoPassword,
  propletCount,
  renderConfig,
  replaceProxy,
} from "../../../src/core/provision.ts";

const id = (n: string) => ({ tenant_id: "d", entity_id: n, api_key: `key-${n}`, channel_id: "c" });

describe("config.toml", () => {
  test("upstream's layout: [manager], [proplet] or [proplet1..N], [proxy], blank lines between, parsed by TOML", () => {
    const one = renderConfig(id("m"), [id("p")], id("x"));
    expect(one).toContain(
      '[manager]\ntenant_id = "d"\nentity_id = "m"\napi_key = "key-m"\nchannel_id = "c"\n\n[proplet]\n',
    );
    expect(one.endsWith('[proxy]\ntenant_id = "d"\nentity_id = "x"\napi_key = "key-x"\nchannel_id = "c"\n')).toBe(true);
    const three = renderConfig(id("m"), [id("a"), id("b"), id("c")], id("x"));
    const parsed = Bun.TOML.parse(three) as Record<string, { entity_id: string }>;
    expect(Object.keys(parsed)).toEqual(["manager", "proplet1", "proplet2", "proplet3", "proxy"]);
    expect(parsed.proplet2!.entity_id).toBe("b");
  });

  test("add-proplets numbers after the last section and inserts before [proxy]; add-proxy replaces it", () => {
    const one = renderConfig(id("m"), [id("p")], id("x"));
    expect(propletCount(one)).toBe(1);
    const more = addProplets(one, [id("q"), id("r")]);
    const parsed = Bun.TOML.parse(more) as Record<string, { entity_id: string }>;
    // Upstream's quirk, kept: a lone [proplet] is followed by [proplet2].
    expect(Object.keys(parsed)).toEqual(["manager", "proplet", "proplet2", "proplet3", "proxy"]);
    expect(propletCount(more)).toBe(3);
    const swapped = Bun.TOML.parse(replaceProxy(more, id("y"))) as Record<string, { entity_id: string }>;
    expect(swapped.proxy!.entity_id).toBe("y");
    expect(Object.keys(swapped)).toEqual(["manager", "proplet", "proplet2", "proplet3", "proxy"]);
    expect(Bun.TOML.parse(addProplets("[manager]\n", [id("z")]))).toHaveProperty("proplet1");
  });
});

describe("mosquitto files", () => {
  test("a password line is mosquitto 2's PBKDF2-SHA512 form and checks against the key", () => {
    const line = mosquittoPassword("edge-1", "s3cret");
    const [user, rest] = line.split(":");
    const [, alg, iterations, salt, hash] = rest!.split("$");
    expect([user, alg, iterations]).toEqual(["edge-1", "7", "101"]);
    const expected = pbkdf2Sync("s3cret", Buffer.from(salt!, "base64"), 101, 64, "sha512").toString("base64");
    expect(hash).toBe(expected);
  });

  test("an ACL gives each kind the embedded broker's topics", () => {
    const acl = mosquittoAcl("edge-1", "proplet", { domainId: "d", channelId: "c" });
    expect(acl).toContain("user edge-1\n");
    expect(acl).toContain("topic write m/d/c/c/control/proplet/results");
    expect(acl).toContain("topic read m/d/c/c/control/manager/start");
    expect(acl).not.toContain("topic write m/d/c/c/control/manager/start");
  });
});
