import { defineCommand } from "citty";
import type { PropletView } from "../core/proplet.ts";
import { action, int } from "./args.ts";
import { api, okCommand, pagedCommand, resolveId, urlArg } from "./client.ts";
import { printJson, printRecord, printTable } from "./output.ts";

const idArg = {
  id: { type: "positional", description: "proplet id (or a unique prefix of it)", required: true },
} as const;

export const propletsCommand = defineCommand({
  meta: { name: "proplets", description: "Inspect the proplets known to the manager" },
  subCommands: {
    list: defineCommand({
      meta: { description: "List proplets" },
      args: {
        status: { type: "string", description: "active | inactive" },
        offset: { type: "string", alias: ["o"] as string[], default: "0" },
        limit: { type: "string", alias: ["l"] as string[], default: "100" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const p = await api<{ total: number; proplets: PropletView[] }>(
            args,
            "GET",
            `/proplets?offset=${int("offset", args.offset, 0, 1e9)}&limit=${int("limit", args.limit, 1, 1000)}${args.status ? `&status=${encodeURIComponent(args.status)}` : ""}`,
          );
          if (args.json) return printJson(p);
          printTable(p.proplets as unknown as Record<string, unknown>[], [
            ["ID", "id"],
            ["NAME", "name"],
            ["ALIVE", "alive"],
            ["TASKS", "task_count"],
            ["LAST HEARTBEAT", "last_alive_at"],
          ]);
          process.stdout.write(`${p.proplets.length} of ${p.total} proplet(s)\n`);
        }),
    }),
    get: defineCommand({
      meta: { description: "Show one proplet" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const p = await api<PropletView>(args, "GET", `/proplets/${await resolveId(args, "proplet", args.id)}`);
          if (args.json) printJson(p);
          else printRecord({ ...p, metadata: undefined, ...p.metadata });
        }),
    }),
    sdf: defineCommand({
      meta: { description: "A proplet as an SDF document (GET /proplets/{id}/sdf)" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () =>
          printJson(await api(args, "GET", `/proplets/${await resolveId(args, "proplet", args.id)}/sdf`)),
        ),
    }),
    delete: okCommand("Forget a proplet (refused while it runs tasks)", "proplet", "DELETE", (id) => `/proplets/${id}`),
    metrics: pagedCommand(
      "A proplet's metrics samples, newest first",
      "proplet",
      "metrics",
      (id) => `/proplets/${id}/metrics`,
    ),
    "alive-history": pagedCommand(
      "A proplet's last heartbeats",
      "proplet",
      "history",
      (id) => `/proplets/${id}/alive-history`,
    ),
    add: defineCommand({
      meta: { description: "Create a proplet identity; prints its API key once, as the environment a proplet needs" },
      args: {
        id: { type: "string", description: "the proplet's id (default: a new UUID)" },
        name: { type: "string", description: "a name to recognise it by" },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const body = {
            kind: "proplet",
            ...(args.id ? { id: args.id } : {}),
            ...(args.name ? { name: args.name } : {}),
          };
          const e = await api<{ id: string; api_key: string }>(args, "POST", "/entities", body);
          if (args.json) return printJson(e);
          process.stdout.write(`PROPLET_ENTITY_ID=${e.id}\nPROPLET_API_KEY=${e.api_key}\n`);
        }),
    }),
    revoke: okCommand(
      "Revoke a proplet's identity: its key stops working and its MQTT connection is closed at once",
      "entity",
      "DELETE",
      (id) => `/entities/${id}`,
    ),
  },
});
