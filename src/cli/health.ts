import { defineCommand } from "citty";
import { action } from "./args.ts";
import { api, urlArg } from "./client.ts";
import { printJson, printRecord } from "./output.ts";

export const healthCommand = defineCommand({
  meta: {
    name: "health",
    description: "Check that the manager is ready (GET /health): exit 1 with the reasons when it is not",
  },
  args: { ...urlArg },
  run: ({ args }) =>
    action(async () => {
      const h = await api<Record<string, unknown>>(args, "GET", "/health");
      if (args.json) printJson(h);
      else printRecord(h);
    }),
});
