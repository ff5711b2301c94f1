import { expect, test } from "bun:test";
import { crossSiteChange, hostAllowed, originAllowed, originPolicy, parseOrigin } from "../../../src/core/origins.ts";

// serve's own origins and names come from its configuration; a request's Host and Origin are only compared with them.

const loop = originPolicy({ tls: false, host: "127.0.0.1", port: 7070, allowedOrigins: ["https://dash.example"] });

test("an origin is scheme://host[:port], canonical; anything more or less is not one", () => {
  expect(parseOrigin("http://LocalHost:3000")).toBe("http://localhost:3000");
  expect(parseOrigin("https://x.example:443")).toBe("https://x.example");
  expect(parseOrigin("http://x.example/")).toBe("http://x.example");
  for (const bad of ["x.example", "http://x.example/app", "ftp://x", "http://u:p@x", "null", "*", "http://x?a"]) {
    expect(parseOrigin(bad)).toBeUndefined();
  }
});

test("serve on loopback answers to the loopback names and --host with its port, and to configured origins' hosts", () => {
  for (const h of [
    "localhost:7070",
    "127.0.0.1:7070",
    "[::1]:7070",
    "LOCALHOST:7070",
    "dash.example",
    "dash.example:443",
  ]) {
    expect(hostAllowed(loop, h)).toBe(true);
  }
  for (const h of [
    "evil.example",
    "evil.example:7070",
    "localhost:7071",
    "localhost",
    "127.0.0.1.evil:7070",
    "",
    null,
  ]) {
    expect(hostAllowed(loop, h)).toBe(false);
  }
  expect(hostAllowed(loop, "localhost:7070@evil.example")).toBe(false);
  const tls = originPolicy({ tls: true, host: "localhost", port: 443, allowedOrigins: [] });
  expect(hostAllowed(tls, "localhost")).toBe(true);
  expect(originAllowed(tls, "https://localhost")).toBe(true);
  expect(originAllowed(tls, "http://localhost")).toBe(false);
});

test("an address of every interface adds loopback, never the request's own name; --advertise-url counts", () => {
  const any = originPolicy({
    tls: false,
    host: "0.0.0.0",
    port: 80,
    allowedOrigins: [],
    advertiseUrl: "http://gw:7070/",
  });
  expect([...any.origins].sort()).toEqual(["http://127.0.0.1", "http://[::1]", "http://gw:7070", "http://localhost"]);
});

test("a change is refused from a foreign Origin, from another site, or as a form's body; reads and the console pass", () => {
  const ok = (r: Parameters<typeof crossSiteChange>[1]) => crossSiteChange(loop, r) === undefined;
  expect(ok({ method: "GET", origin: "http://evil.example" })).toBe(true);
  expect(ok({ method: "POST" })).toBe(true); // curl, the CLI: no Origin, no body
  expect(ok({ method: "POST", contentType: "application/json" })).toBe(true);
  expect(ok({ method: "POST", origin: "http://127.0.0.1:7070", contentType: "application/json" })).toBe(true);
  expect(ok({ method: "POST", origin: "http://evil.example", console: "1" })).toBe(true);
  expect(ok({ method: "PUT", contentType: "multipart/form-data; boundary=x" })).toBe(true); // upload: never simple
  expect(crossSiteChange(loop, { method: "POST", origin: "http://evil.example" })?.kind).toBe("forbidden");
  expect(crossSiteChange(loop, { method: "DELETE", origin: "null" })?.kind).toBe("forbidden");
  expect(crossSiteChange(loop, { method: "POST", fetchSite: "cross-site" })?.kind).toBe("forbidden");
  expect(ok({ method: "POST", contentType: "application/cbor" })).toBe(true);
  expect(ok({ method: "POST", contentType: "Application/JSON; charset=utf-8" })).toBe(true);
  for (const t of [
    "text/plain",
    "TEXT/PLAIN; charset=application/json",
    "application/x-www-form-urlencoded",
    "text/ping",
  ]) {
    expect(crossSiteChange(loop, { method: "POST", contentType: t })?.kind).toBe("invalid");
  }
});
