import { expect, test } from "bun:test";
import { ManagerMetrics } from "../../../src/manager/api/prometheus.ts";

// A certificate's time left is what /metrics says it is: never more than there is. Rounded to the nearest second,
// one renewed for 10 days read as exactly 10 days for half a second after (seen in CI as 864000).
test("propeller_certificate_expiry_seconds rounds down: 10 days less 1 ms is 863999", async () => {
  const notAfter = new Date(Date.now() + 10 * 86_400_000 - 1);
  const m = new ManagerMetrics({
    tasksByState: () => ({}),
    queueDepth: () => 0,
    propletsAlive: () => 0,
    counters: { starts: 0, completions: 0, failures: 0, interruptions: 0 },
    mqtt: { received: 0, sent: 0 },
    certificates: () => [{ cert: "server", notAfter }],
  });
  const text = await m.registry.metrics();
  const seconds = Number(/propeller_certificate_expiry_seconds\{cert="server"\} (\S+)/.exec(text)?.[1]);
  expect(seconds).toBeLessThan(10 * 86400);
  expect(seconds).toBeGreaterThan(10 * 86400 - 5);
});
