import { defineCommand } from "citty";
import type { PropletView } from "../core/proplet.ts";
import { action, int, UsageError } from "./args.ts";
import { api, endpoint, okCommand, okLine, pagedCommand, resolveId, urlArg } from "./client.ts";
import { joinTokenCommands } from "./join-tokens.ts";
import { printJson, printRecord, printTable } from "./output.ts";

const idArg = {
  id: { type: "positional", description: "proplet id (or a unique prefix of it)", required: true },
} as const;

/** `--label k=v[,k=v]`, repeated: citty keeps only the last, so they are read from the raw arguments. */
function labelsArg(rawArgs: string[]): Record<string, string> | undefined {
  const pairs: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const m = /^--label(?:=(.*))?$/.exec(rawArgs[i]!);
    if (m) pairs.push(...(m[1] ?? rawArgs[++i] ?? "").split(","));
  }
  if (pairs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const p of pairs.map((x) => x.trim()).filter(Boolean)) {
    const eq = p.indexOf("=");
    if (eq <= 0) throw new UsageError(`--label: ${JSON.stringify(p)} is not KEY=VALUE`);
    out[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return out;
}

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
            ["CORDONED", "cordoned"],
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
          const p = await api<PropletView>(
            args,
            "GET",
            `/proplets/${encodeURIComponent(await resolveId(args, "proplet", args.id))}`,
          );
          if (args.json) printJson(p);
          else printRecord({ ...p, metadata: undefined, ...p.metadata });
        }),
    }),
    sdf: defineCommand({
      meta: { description: "A proplet as an SDF document (GET /proplets/{id}/sdf)" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () =>
          printJson(
            await api(args, "GET", `/proplets/${encodeURIComponent(await resolveId(args, "proplet", args.id))}/sdf`),
          ),
        ),
    }),
    cordon: cordonCommand(
      "Place no new work on a proplet (what runs there runs on); stored, so it survives restarts",
      "cordon",
    ),
    uncordon: cordonCommand("Let a cordoned proplet take work again", "uncordon"),
    drain: defineCommand({
      meta: {
        description:
          "Cordon a proplet and wait for its running tasks to end; with --force, move those still running after --timeout",
      },
      args: {
        ...idArg,
        timeout: {
          type: "string",
          description: "seconds to wait for running tasks to end (default 300)",
          default: "300",
        },
        force: {
          type: "boolean",
          description: "after --timeout, stop what still runs there and run it elsewhere (retries permitting)",
        },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          const id = await resolveId(args, "proplet", args.id);
          const timeoutS = int("timeout", args.timeout, 0, 86400);
          let v = await api<PropletView>(args, "POST", `/proplets/${encodeURIComponent(id)}/drain`);
          const deadline = Date.now() + timeoutS * 1000;
          if (v.task_count > 0) process.stderr.write(`waiting for ${v.task_count} task(s) on ${id} to end\n`);
          while (v.task_count > 0 && Date.now() < deadline) {
            await Bun.sleep(Math.min(500, Math.max(0, deadline - Date.now())));
            v = await api<PropletView>(args, "GET", `/proplets/${encodeURIComponent(id)}`);
          }
          if (v.task_count > 0 && !args.force) {
            throw new UsageError(
              `proplet ${id} still runs ${v.task_count} task(s) after ${timeoutS} s; it stays cordoned (--force stops them there: they run elsewhere while retries last)`,
            );
          }
          if (v.task_count > 0) {
            // Not "moving": each is stopped there, and runs elsewhere only while it has retries left.
            process.stderr.write(
              `stopping ${v.task_count} task(s) on ${id}: each runs again elsewhere while it has retries left (one pinned to ${id} waits for it to be uncordoned), else it ends Failed\n`,
            );
            v = await api<PropletView>(args, "POST", `/proplets/${encodeURIComponent(id)}/drain?force=true`);
          }
          if (args.json) printJson(v);
          else process.stdout.write(`proplet ${id} drained: cordoned, running nothing\n`);
        }),
    }),
    delete: defineCommand({
      meta: { description: "Forget a proplet (refused while it runs tasks; one still alive comes back when it beats)" },
      args: { ...idArg, ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const at = `/proplets/${encodeURIComponent(await resolveId(args, "proplet", args.id))}`;
          const v = await api<PropletView>(args, "GET", at);
          await api(args, "DELETE", at);
          process.stdout.write(okLine(args.json));
          // Said, not hidden behind "ok": forgotten, a live proplet is back at its next heartbeat.
          if (v.alive)
            process.stderr.write(
              `proplet ${v.id} (${v.name}) is alive: it is back at its next heartbeat; stop it first, or \`propeller proplets revoke ${v.name}\` to keep it out\n`,
            );
        }),
    }),
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
        label: {
          type: "string",
          description:
            "KEY=VALUE[,KEY=VALUE…], may repeat: labels tasks' requirements may rely on (a proplet's own claims count only with serve --trust-proplet-labels)",
        },
        ...urlArg,
      },
      run: ({ args, rawArgs }) =>
        action(async () => {
          const labels = labelsArg(rawArgs);
          const body = {
            kind: "proplet",
            ...(args.id ? { id: args.id } : {}),
            ...(args.name ? { name: args.name } : {}),
            ...(labels ? { labels } : {}),
          };
          const e = await api<{ id: string; api_key: string }>(args, "POST", "/entities", body);
          if (args.json) return printJson(e);
          // The gateway's FL URL as this CLI reaches serve: the one origin (besides a task's own) the proplet sends
          // its key to for FL models and updates; without it, FL rounds on this proplet failed with 401.
          const fl = endpoint(args.url, "/fl").href;
          process.stdout.write(`PROPLET_ENTITY_ID=${e.id}\nPROPLET_API_KEY=${e.api_key}\nPROPLET_FL_URL=${fl}\n`);
        }),
    }),
    label: defineCommand({
      meta: {
        description: "Set a proplet identity's labels (replacing them): --label KEY=VALUE, may repeat; none clears",
      },
      args: {
        ...idArg,
        label: { type: "string", description: "KEY=VALUE[,KEY=VALUE…], may repeat" },
        ...urlArg,
      },
      run: ({ args, rawArgs }) =>
        action(async () => {
          const e = await api(args, "PUT", `/entities/${encodeURIComponent(args.id)}/labels`, {
            labels: labelsArg(rawArgs) ?? {},
          });
          if (args.json) return printJson(e);
          printRecord(e as Record<string, unknown>);
        }),
    }),
    ...joinTokenCommands,
    revoke: okCommand(
      "Revoke a proplet's identity: its key stops working and its MQTT connection is closed at once",
      "entity",
      "DELETE",
      (id) => `/entities/${encodeURIComponent(id)}`,
    ),
  },
});

function cordonCommand(description: string, verb: "cordon" | "uncordon") {
  return defineCommand({
    meta: { description },
    args: { ...idArg, ...urlArg },
    run: ({ args }) =>
      action(async () => {
        const id = await resolveId(args, "proplet", args.id);
        const v = await api<PropletView>(args, "POST", `/proplets/${encodeURIComponent(id)}/${verb}`);
        if (args.json) printJson(v);
        else process.stdout.write(`proplet ${id} ${verb}ed\n`);
      }),
  });
}
