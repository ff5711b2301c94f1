import { expect, test } from "bun:test";
import { formatJoinToken, JoinTokenCreate, joinedMqttAddress, parseJoinToken } from "../../../src/core/join.ts";
import { expiryWarnings } from "../../../src/core/x509-read.ts";

const secret = "A".repeat(43);
const hash = `sha256:${"ab".repeat(32)}`;

test("a join token's text carries its secret and the CA hash, and reads back", () => {
  const text = formatJoinToken({ secret, caHash: hash });
  expect(text).toBe(`ppj_${secret}.${"ab".repeat(32)}`);
  expect(parseJoinToken(text)).toEqual({ secret, caHash: hash });
  expect(parseJoinToken(`ppj_${secret}`)).toEqual({ secret });
  for (const bad of ["", "ppj_short", `ppt_${secret}`, `ppj_${secret}.zz`, `ppj_${secret}.${"ab".repeat(31)}`])
    expect(parseJoinToken(bad)).toBeUndefined();
});

test("join-token requests: ttl 1h by default, at most 30d; a name is for one use", () => {
  expect(JoinTokenCreate.parse({})).toEqual({ ttl: 3600, uses: 1 });
  expect(JoinTokenCreate.parse({ ttl: "7d", uses: 5 })).toMatchObject({ ttl: 7 * 86400, uses: 5 });
  expect(JoinTokenCreate.safeParse({ ttl: "31d" }).success).toBe(false);
  expect(JoinTokenCreate.safeParse({ ttl: "0s" }).success).toBe(false);
  expect(JoinTokenCreate.safeParse({ uses: 1001 }).success).toBe(false);
  expect(JoinTokenCreate.safeParse({ name: "edge-1", uses: 2 }).error?.issues[0]?.path).toEqual(["name"]);
  expect(JoinTokenCreate.safeParse({ role: "admin" }).success).toBe(false);
});

test("a joined proplet's broker: the external URL, else serve's port on the host it joined", () => {
  expect(joinedMqttAddress({ url: "mqtt://mq:1883" }, "https://gw:7070")).toBe("mqtt://mq:1883");
  expect(joinedMqttAddress({ scheme: "mqtts", port: 8883 }, "https://gw.local:7070/")).toBe("mqtts://gw.local:8883");
});

test("expiry warnings: within 30 days, and past the end", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  const w = expiryWarnings(
    [
      { label: "server", notAfter: new Date(now + 10 * 86_400_000 + 1000) },
      { label: "ca", notAfter: new Date(now + 400 * 86_400_000) },
      { label: "client_ca", notAfter: new Date(now - 1000) },
    ],
    now,
  );
  expect(w).toHaveLength(2);
  expect(w[0]).toContain("certificate server expires on 2026-01-11");
  expect(w[0]).toContain("(in 10 days)");
  expect(w[1]).toContain("certificate client_ca expired");
});
