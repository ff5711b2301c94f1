import { describe, expect, test } from "bun:test";
import { parseReference, type Reference } from "../../../src/core/oci.ts";
import {
  candidateScopes,
  decide,
  identityMatches,
  parseTrustPolicy,
  type Requirement,
  requirementsFor,
  type TrustPolicy,
} from "../../../src/core/trust-policy.ts";

const ref = (t: string) => parseReference(t) as Reference;
const D = `sha256:${"a".repeat(64)}`;
const KEY = "3B93AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE273";

function policy(p: unknown): TrustPolicy {
  const r = parseTrustPolicy(JSON.stringify(p));
  if (typeof r === "string") throw new Error(r);
  return r;
}

describe("parseTrustPolicy", () => {
  test("names the field at fault", () => {
    expect(parseTrustPolicy("{")).toMatch(/^not JSON/);
    expect(parseTrustPolicy("{}")).toBe("default: is required");
    // A misspelt transport left its scopes out and `default` in force.
    const dockr = {
      default: [{ type: "insecureAcceptAnything" }],
      transports: { dockr: { "": [{ type: "reject" }] } },
    };
    expect(parseTrustPolicy(JSON.stringify(dockr))).toStartWith(
      'transports: unknown transport "dockr" (did you mean docker?)',
    );
    const other = { default: [{ type: "reject" }], transports: { "docker-daemon": { "": [{ type: "reject" }] } } };
    expect(typeof parseTrustPolicy(JSON.stringify(other))).toBe("object");
    expect(parseTrustPolicy(JSON.stringify({ default: [{ type: "accept" }] }))).toMatch(/^default\.0\.type/);
    expect(parseTrustPolicy(JSON.stringify({ default: [{ type: "signedBy", keyType: "GPGKeys" }] }))).toContain(
      "signedBy needs exactly one of keyPath, keyPaths, keyData",
    );
    expect(
      parseTrustPolicy(JSON.stringify({ default: [{ type: "signedBy", keyType: "X509Certificates", keyPath: "k" }] })),
    ).toContain('only "GPGKeys"');
    expect(parseTrustPolicy(JSON.stringify({ default: [{ type: "reject", extra: 1 }] }))).toMatch(/extra/);
  });

  test("a misspelt top-level key is refused, not ignored (it would leave only an accepting default)", () => {
    const typo = {
      default: [{ type: "insecureAcceptAnything" }],
      transport: { docker: { "registry.site/apps": [{ type: "reject" }] } },
    };
    expect(parseTrustPolicy(JSON.stringify(typo))).toBe(
      'unknown key "transport" at the top level (it has default and transports)',
    );
  });

  test("reads the examples of containers-policy.json(5)", () => {
    const p = policy({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "": [{ type: "insecureAcceptAnything" }],
          "registry.example.com": [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/k.gpg" }],
          "registry.example.com/app": [
            {
              type: "signedBy",
              keyType: "GPGKeys",
              keyPaths: ["/a.gpg", "/b.gpg"],
              signedIdentity: { type: "matchRepository" },
            },
          ],
        },
        atomic: { "": [{ type: "reject" }] },
      },
    });
    expect(p.default).toEqual([{ type: "reject" }]);
  });
});

describe("scopes", () => {
  test("most specific first, as containers/image lists them", () => {
    expect(candidateScopes(ref("registry.example.com:5000/ns/app:v1"))).toEqual([
      "registry.example.com:5000/ns/app:v1",
      "registry.example.com:5000/ns/app",
      "registry.example.com:5000/ns",
      "registry.example.com:5000",
      "*.example.com",
      "*.com",
    ]);
    expect(candidateScopes(ref(`127.0.0.1:5000/app@${D}`))).toEqual([
      `127.0.0.1:5000/app@${D}`,
      "127.0.0.1:5000/app",
      "127.0.0.1:5000",
    ]);
  });

  test("the most specific scope wins, then the docker default, then the global default", () => {
    const p = policy({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "127.0.0.1:5000": [{ type: "insecureAcceptAnything" }],
          "127.0.0.1:5000/app": [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/k" }],
          "*.example.com": [{ type: "insecureAcceptAnything" }],
        },
      },
    });
    expect(requirementsFor(p, ref("127.0.0.1:5000/app:v1")).scope).toBe("127.0.0.1:5000/app");
    expect(requirementsFor(p, ref("127.0.0.1:5000/other:v1")).scope).toBe("127.0.0.1:5000");
    // A port is part of the registry: another port is another scope.
    expect(requirementsFor(p, ref("127.0.0.1:5001/app:v1")).scope).toBe("default");
    expect(requirementsFor(p, ref("r.example.com/app:v1")).scope).toBe("*.example.com");
    expect(requirementsFor(p, undefined).scope).toBe("default");
  });
});

describe("signedIdentity", () => {
  const tagRef = ref("127.0.0.1:5000/app:v1");
  const digestRef = ref(`127.0.0.1:5000/app@${D}`);
  test("matchRepoDigestOrExact (the default)", () => {
    expect(identityMatches(undefined, tagRef, "127.0.0.1:5000/app:v1")).toBe(true);
    expect(identityMatches(undefined, tagRef, "127.0.0.1:5000/app:v2")).toBe(false);
    expect(identityMatches(undefined, digestRef, "127.0.0.1:5000/app:anything")).toBe(true);
    expect(identityMatches(undefined, digestRef, "127.0.0.1:5000/other:v1")).toBe(false);
  });
  test("matchExact, matchRepository, exactReference, exactRepository", () => {
    expect(identityMatches({ type: "matchExact" }, digestRef, "127.0.0.1:5000/app:v1")).toBe(false);
    expect(identityMatches({ type: "matchExact" }, tagRef, "127.0.0.1:5000/app:v1")).toBe(true);
    expect(identityMatches({ type: "matchRepository" }, tagRef, "127.0.0.1:5000/app:v9")).toBe(true);
    expect(identityMatches({ type: "matchRepository" }, tagRef, "127.0.0.1:5000/app2:v1")).toBe(false);
    const exact = { type: "exactReference", dockerReference: "r.example.com/app:prod" } as const;
    expect(identityMatches(exact, tagRef, "r.example.com/app:prod")).toBe(true);
    expect(identityMatches(exact, tagRef, "127.0.0.1:5000/app:v1")).toBe(false);
    const repo = { type: "exactRepository", dockerRepository: "r.example.com/app" } as const;
    expect(identityMatches(repo, tagRef, "r.example.com/app:any")).toBe(true);
    expect(identityMatches(repo, undefined, "r.example.com/app2:any")).toBe(false);
  });
});

describe("decide", () => {
  const p = policy({
    default: [{ type: "reject" }],
    transports: { docker: { "127.0.0.1:5000/app": [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/k" }] } },
  });
  const keys = (r: Requirement) => (r.type === "signedBy" ? [KEY] : []);
  const r = ref("127.0.0.1:5000/app:v1");
  test("names the rule and the scope", () => {
    expect(decide(p, r, D, keys, []).reason).toBe(
      "127.0.0.1:5000/app requires a signature by key 3B93…E273 (scope 127.0.0.1:5000/app); none found",
    );
    expect(decide(p, ref("127.0.0.1:5000/x:v1"), D, keys, [])).toMatchObject({
      allowed: false,
      rule: "reject",
      reason: "127.0.0.1:5000/x is rejected (scope default)",
    });
  });
  test("a signature by the key, for the digest, naming the image, is accepted; any other is not", () => {
    const good = { fingerprint: KEY, digest: D, identity: "127.0.0.1:5000/app:v1" };
    expect(decide(p, r, D, keys, [good]).allowed).toBe(true);
    expect(decide(p, r, D, keys, [{ ...good, fingerprint: "0".repeat(40) }]).allowed).toBe(false);
    expect(decide(p, r, D, keys, [{ ...good, digest: `sha256:${"b".repeat(64)}` }]).reason).toContain(
      "is for sha256:b",
    );
    expect(decide(p, r, D, keys, [{ ...good, identity: "127.0.0.1:5000/app:v2" }]).reason).toContain(
      "which matchRepoDigestOrExact does not accept",
    );
  });
  test("two keys during a change-over: either one's signature is accepted", () => {
    const two = policy({ default: [{ type: "signedBy", keyType: "GPGKeys", keyPaths: ["/old", "/new"] }] });
    const both = () => [KEY, "NEWKEY00000000000000000000000000000000AB"];
    const sig = { fingerprint: "NEWKEY00000000000000000000000000000000AB", digest: D, identity: "x/y:z" };
    expect(decide(two, undefined, D, both, [sig]).allowed).toBe(true);
  });
});
