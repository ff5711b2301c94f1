import { defineCommand } from "citty";
import { ManagerEvent } from "../core/events.ts";
import { action } from "./args.ts";
import { ApiError, authHeaders, managerUrl, reason, tlsInit, urlArg } from "./client.ts";

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
  }
}

export const watchCommand = defineCommand({
  meta: { name: "watch", description: "Print task, run, proplet and metrics events live" },
  args: {
    types: {
      type: "string",
      description: "comma-separated: task,run,proplet,metrics (default all but metrics)",
      default: "task,run,proplet",
    },
    task: { type: "string", description: "only this task's events" },
    proplet: { type: "string", description: "only this proplet's events" },
    ...urlArg,
  },
  run: ({ args }) =>
    action(async () => {
      const q = new URLSearchParams({ types: args.types });
      if (args.task) q.set("task_id", args.task);
      if (args.proplet) q.set("proplet_id", args.proplet);
      let res: Response;
      try {
        res = await fetch(new URL(`/events?${q}`, managerUrl(args.url)), {
          headers: authHeaders(args),
          ...tlsInit(args),
        });
      } catch (e) {
        throw new ApiError(`cannot reach the manager at ${args.url}: ${reason(e)}`);
      }
      if (!res.ok || !res.body) throw new ApiError(`GET /events: ${res.status} ${await res.text()}`);
      let buf = "";
      for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n");
          if (!data) continue;
          // A newer manager's event this CLI does not know is printed as it came.
          const e = ManagerEvent.safeParse(JSON.parse(data));
          process.stdout.write(`${args.json || !e.success ? data : line(e.data)}\n`);
        }
      }
    }),
});
