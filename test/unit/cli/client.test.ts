import { describe, expect, test } from "bun:test";
import { ApiError, managerUrl, reason } from "../../../src/cli/client.ts";

// The manager URL as an operator types it, and what the CLI says when it cannot reach the manager there.

describe("--url", () => {
  test("no scheme is http; http and https pass as typed", () => {
    expect(managerUrl("127.0.0.1:7070")).toBe("http://127.0.0.1:7070");
    expect(managerUrl("https://gateway.local:7070")).toBe("https://gateway.local:7070");
    expect(managerUrl("HTTP://localhost:7070")).toBe("HTTP://localhost:7070");
  });

  test("the broker's URL is refused naming the REST API's, not 'protocol must be http:, https: or s3:'", () => {
    expect(() => managerUrl("mqtt://127.0.0.1:1883")).toThrow(ApiError);
    expect(() => managerUrl("mqtt://127.0.0.1:1883")).toThrow(
      "--url mqtt://127.0.0.1:1883: a mqtt:// URL is the MQTT broker's; the CLI talks to the manager's REST API at an http:// or https:// URL (serve's --http-port, default 7070), e.g. --url http://localhost:7070",
    );
    expect(() => managerUrl("ws://127.0.0.1:7070/mqtt")).toThrow("a ws:// URL is the MQTT broker's");
    expect(() => managerUrl("ftp://x")).toThrow("--url ftp://x: the CLI talks to the manager's REST API at an http://");
  });

  test("https:// to a serve speaking plain HTTP says to use http://, not to trust a CA", async () => {
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("{}") });
    try {
      const e = await fetch(`https://127.0.0.1:${server.port}/tasks`).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeDefined();
      const said = reason(e);
      expect(said).toContain("a serve started without --tls-cert speaks plain HTTP: use http://");
      expect(said).not.toContain("--ca-cert");
    } finally {
      server.stop(true);
    }
  });
});
