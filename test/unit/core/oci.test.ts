import { expect, test } from "bun:test";
import {
  canonicalReference,
  parseChallenge,
  parseReference,
  parseRegistryList,
  pickFromIndex,
  pickWasmLayer,
  registryListed,
  registryScheme,
} from "../../../src/core/oci.ts";

test("references, layers, challenges", () => {
  expect(parseReference("localhost:5000/a/b:v2")).toEqual({ registry: "localhost:5000", repository: "a/b", tag: "v2" });
  expect(parseReference("ghcr.io/x/y")).toEqual({ registry: "ghcr.io", repository: "x/y", tag: "latest" });
  expect(parseReference(`r.io/x@sha256:${"a".repeat(64)}`)).toEqual({
    registry: "r.io",
    repository: "x",
    digest: `sha256:${"a".repeat(64)}`,
  });
  expect(parseReference("just-a-name")).toContain("not an OCI reference");
  const d = (mediaType: string, extra = {}) => ({ mediaType, digest: `sha256:${"b".repeat(64)}`, size: 1, ...extra });
  expect(pickWasmLayer({ layers: [d("text/plain"), d("application/vnd.wasm.content.layer.v1+wasm")] })).toMatchObject({
    mediaType: "application/vnd.wasm.content.layer.v1+wasm",
  });
  expect(pickWasmLayer({ layers: [d("x"), d("y")] })).toContain("none of a Wasm media type");
  expect(
    pickFromIndex({
      manifests: [d("m", { platform: { os: "linux" } }), d("m", { platform: { os: "wasi", architecture: "wasm" } })],
    })?.platform?.os,
  ).toBe("wasi");
  expect(parseChallenge('Bearer realm="https://auth.io/token",service="reg",scope="repository:a:pull"')).toEqual({
    scheme: "bearer",
    params: { realm: "https://auth.io/token", service: "reg", scope: "repository:a:pull" },
  });
  expect(registryScheme("127.0.0.1:5000", [])).toBe("http");
  expect(registryScheme("reg.lan:5000", ["reg.lan:5000"])).toBe("http");
  expect(registryScheme("ghcr.io", [])).toBe("https");
});

test("registry lists, canonical references", () => {
  expect(parseRegistryList(" Reg.io:5000, ghcr.io ,,[::1]:80")).toEqual(["reg.io:5000", "ghcr.io", "[::1]:80"]);
  expect(parseRegistryList(undefined)).toEqual([]);
  expect(parseRegistryList("http://x/")).toBe('"http://x/" is not a registry host[:port]');
  expect(parseRegistryList("x:99999")).toContain("is not a registry host[:port]");
  expect(parseRegistryList("a b")).toContain("is not a registry host[:port]");
  // An entry names one host and port, as docker's auths keys: not the host's other ports.
  expect(registryListed(["reg.io"], "REG.io")).toBe(true);
  expect(registryListed(["reg.io"], "reg.io:5000")).toBe(false);
  expect(canonicalReference(" oci://Reg.io/a/b ")).toBe("reg.io/a/b:latest");
  expect(canonicalReference("reg.io/a/b:latest")).toBe("reg.io/a/b:latest");
  expect(canonicalReference(`reg.io/a@sha256:${"c".repeat(64)}`)).toBe(`reg.io/a@sha256:${"c".repeat(64)}`);
  expect(canonicalReference("nohost")).toBeUndefined();
});
