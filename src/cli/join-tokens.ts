import { defineCommand } from "citty";
import { action, int } from "./args.ts";
import { api, managerUrl, okCommand, urlArg } from "./client.ts";
import { printJson, printTable } from "./output.ts";

// `propeller proplets join-token|join-tokens|join-token-revoke`: one line that lets a new proplet join
// (`propeller proplet --join URL --token T`), listed and revoked like REST tokens (core/join.ts).

interface Made {
  id: string;
  token: string;
  expires_at: string;
  max_uses: number;
  ca_hash?: string;
}

export const joinTokenCommands = {
  "join-token": defineCommand({
    meta: {
      description:
        "Make a join token (one line, on stdout): on a new worker, `propeller proplet --join URL --token TOKEN` fetches its identity and the site CA",
    },
    args: {
      ttl: { type: "string", description: "how long it works: 30m, 1h, 7d (at most 30d)", default: "1h" },
      name: { type: "string", description: "the name the joined proplet gets (with --uses 1)" },
      uses: { type: "string", description: "how many proplets may join with it", default: "1" },
      ...urlArg,
    },
    run: ({ args }) =>
      action(async () => {
        const body = {
          ttl: args.ttl,
          uses: int("uses", args.uses, 1, 1000),
          ...(args.name ? { name: args.name } : {}),
        };
        const t = await api<Made>(args, "POST", "/join-tokens", body);
        if (args.json) return printJson(t);
        process.stdout.write(`${t.token}\n`);
        const pin = t.ca_hash
          ? `pins the site CA ${t.ca_hash}`
          : "pins no CA: serve has no TLS with a CA in --tls-cert";
        process.stderr.write(
          `join token ${t.id}: ${t.max_uses} use(s) until ${t.expires_at}; ${pin}\n` +
            `on the worker: propeller proplet --join ${managerUrl(args.url)} --token <the line above>  (the URL as the worker reaches serve)\n`,
        );
      }),
  }),
  "join-tokens": defineCommand({
    meta: { description: "List join tokens: uses, expiry, the proplets that joined" },
    args: { ...urlArg },
    run: ({ args }) =>
      action(async () => {
        const r = await api<{ join_tokens: Record<string, unknown>[] }>(args, "GET", "/join-tokens");
        if (args.json) return printJson(r);
        printTable(
          r.join_tokens.map((t) => ({
            ...t,
            uses: `${t.uses}/${t.max_uses}`,
            joined: (t.joined as string[]).join(","),
          })),
          [
            ["ID", "id"],
            ["NAME", "proplet_name"],
            ["USES", "uses"],
            ["EXPIRES", "expires_at"],
            ["REVOKED", "revoked_at"],
            ["JOINED", "joined"],
          ],
        );
      }),
  }),
  "join-token-revoke": okCommand(
    "Revoke a join token: it stops working at once (proplets that joined keep their identities)",
    "join token",
    "DELETE",
    (id) => `/join-tokens/${encodeURIComponent(id)}`,
  ),
};
