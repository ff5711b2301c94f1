// Results delivered after an outage (issue 16): serve (authentication on, no local proplet) and one standalone
// proplet whose MQTT link runs through a TCP proxy that black-holes it (test/link.ts). 100 tasks start on the
// proplet (a component that sleeps 5 s), the link is cut for --outage-s (default 600), the tasks finish during it,
// the link comes back; then every task must be Completed with its own result, each with one run. JSON last line:
// {outage_s, tasks, completed, runs, duplicates, late, seconds_to_deliver, proplet_reconnected}.
//   bun scripts/bench/partition.ts [--outage-s 600] [--tasks 100]

import { b64, http, spawnProplet, startServe, until, untilAlive } from "../../test/helpers.ts";
import { Link } from "../../test/link.ts";
import { scriptArgs } from "../args.ts";

const { values } = scriptArgs(import.meta.path, {
  options: { "outage-s": { type: "string", default: "600" }, tasks: { type: "string", default: "100" } },
});
const outageS = Number(values["outage-s"]);
const n = Number(values.tasks);
// The grace outlasts the outage: the runs are kept, not given up.
const grace = String(outageS + 300);
const s = await startServe({ extra: ["--no-local-proplet", "--liveliness-interval", "1", "--partition-grace", grace] });
const link = await new Link({ host: "127.0.0.1", port: s.mqttPort }).start();
const proplet = await spawnProplet({ url: s.url, mqttPort: link.port }, "edge-bench", {
  PROPLET_LIVELINESS_INTERVAL: "1",
  PROPLET_MAX_TASKS: String(n),
  PROPLET_MQTT_KEEPALIVE: "10",
  PROPLET_LOG_LEVEL: "warn",
});
try {
  await untilAlive(s.url, "edge-bench");
  const file = b64("args.component");
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = await http(`${s.url}/tasks`, "POST", { name: "args", file, inputs: ["sleep", "5000", `task-${i}`] });
    ids.push(c.body.id);
    await http(`${s.url}/tasks/${c.body.id}/start`, "POST");
  }
  const states = async () => Promise.all(ids.map(async (id) => (await http(`${s.url}/tasks/${id}`)).body));
  await until("every task running on the proplet", async () => (await states()).every((t) => t.state === 2), 30_000);
  await Bun.sleep(1000); // the start messages are in the proplet's hands before the cut
  link.cut();
  console.error(`link cut for ${outageS} s with ${n} tasks running`);
  await Bun.sleep(outageS * 1000);
  const stillRunning = (await states()).filter((t) => t.state === 2).length;
  const cutAt = performance.now();
  link.restore();
  console.error(`link restored; ${stillRunning} task(s) still Running at the manager`);
  const final = await until(
    "every task to finish",
    async () => {
      const all = await states();
      return all.every((t) => t.state >= 3) ? all : undefined;
    },
    120_000,
  );
  const secondsToDeliver = (performance.now() - cutAt) / 1000;
  const runs = await Promise.all(ids.map(async (id) => (await http(`${s.url}/tasks/${id}/runs`)).body.runs));
  const own = final.filter((t, i) => t.state === 3 && String(t.results).endsWith(`task-${i}\n`)).length;
  console.log(
    JSON.stringify({
      outage_s: outageS,
      tasks: n,
      completed: final.filter((t) => t.state === 3).length,
      with_own_result: own,
      runs: runs.reduce((a, r) => a + r.length, 0),
      duplicates: runs.filter((r) => r.length > 1).length,
      late: runs.flat().filter((r: { late_at?: string }) => r.late_at).length,
      seconds_to_deliver: +secondsToDeliver.toFixed(2),
      still_running_before_restore: stillRunning,
    }),
  );
} finally {
  await proplet.kill("SIGKILL");
  await link.close();
  await s.kill();
}
