import { defineCommand } from "citty";
import { ManagerEvent } from "../core/events.ts";
import { action } from "./args.ts";
import { api, sse, urlArg } from "./client.ts";
import { roundLine } from "./fl-line.ts";
import { terminalSafe } from "./output.ts";

// `propeller watch`: the manager's live event stream (GET /events), one line per event, or JSON lines.

const on = (proplet: string | undefined) => (proplet ? ` on ${proplet}` : "");
const because = (error: string | undefined) => (error ? `: ${error}` : "");

function line(e: ManagerEvent): string {
  const time = new Date(e.at).toISOString().slice(11, 23);
  switch (e.type) {
    case "task":
      return `${time} task    ${e.task_id} ${e.name} → ${e.status}${on(e.proplet_id)}${because(e.error)}`;
    case "run":
      return `${time} run     ${e.task_id} attempt ${e.attempt} ${e.phase}${e.status ? ` ${e.status}` : ""}${on(e.proplet_id)}${because(e.error)}`;
    case "proplet":
      return `${time} proplet ${e.proplet_id} ${e.alive ? "up" : "down"}`;
    case "metrics":
      return `${time} metrics ${JSON.stringify(e)}`;
    case "fl":
      return `${time} fl      ${roundLine(e)}`;
    case "trust":
      return `${time} trust   refused at ${e.at_step}${e.task_id ? ` (task ${e.task_id})` : ""}: ${e.reason}`;
  }
}

export const watchCommand = defineCommand({
  meta: {
    name: "watch",
    description: "Print task, run, proplet, metrics, federated-learning and trust-policy refusal events live",
  },
  args: {
    types: {
      type: "string",
      description: "comma-separated: task,run,proplet,metrics,fl,trust (default all but metrics)",
      default: "task,run,proplet,fl,trust",
    },
    task: { type: "string", description: "only this task's events" },
    proplet: { type: "string", description: "only this proplet's events" },
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      const q = new URLSearchParams({ types: args.types });
      // A task by id, a start of one, or a name, as every command takes them; one that names nothing is said at once
      // (the watch waited in silence for events that could never come).
      if (args.task)
        q.set("task_id", (await api<{ id: string }>(args, "GET", `/tasks/${encodeURIComponent(args.task)}`)).id);
      // A proplet may be followed by name before it first comes (serve resolves the name as it can).
      if (args.proplet) q.set("proplet_id", args.proplet);
      for await (const { data } of sse(args, `/events?${q}`)) {
        // A newer manager's event this CLI does not know is printed as it came.
        const e = ManagerEvent.safeParse(JSON.parse(data));
        // A line carries what peers and guests wrote (names, errors): shown escaped (output.ts terminalSafe).
        process.stdout.write(`${args.json || !e.success ? data : terminalSafe(line(e.data))}\n`);
      }
    }),
});
