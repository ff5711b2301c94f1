import { join } from "node:path";
import { defineCommand } from "citty";
import { TokenCreate, ttlSeconds } from "../core/identity.ts";
import { Identities } from "../manager/identities.ts";
import { adminTokenFileWorks, writeAdminTokenFile } from "./admin-token.ts";
import { action, UsageError } from "./args.ts";
import { api, urlArg } from "./client.ts";
import { printJson, printTable } from "./output.ts";
import { storeArgs, storeChoice, withStore } from "./store.ts";

// `propeller tokens`: REST tokens. A token's text is shown once, when it is made; the manager keeps its hash.

interface TokenOut {
  id: string;
  name: string;
  role: string;
  created_at: string;
  revoked_at?: string;
  expires_at?: string;
  token?: string;
}

/**
 * Break-glass: a token written straight into a stopped serve's store, for a site whose every admin token is lost.
 * Refused while a serve holds the data dir (or, on PostgreSQL, a manager holds the lease): it would not see it.
 * An admin token also goes into the data dir's admin.token when that file holds none that works (none there, or a
 * revoked one): the CLI on the gateway reads it, and serve's sign-in link is made from it. A file whose token
 * works is left as it is. A PostgreSQL site's data dir is one manager's: its file is left alone.
 */
async function mintDirectly(
  args: { "data-dir"?: string; storage?: string; "postgres-url"?: string },
  body: { role: string; name?: string },
): Promise<TokenOut & { file?: string }> {
  const input = TokenCreate.safeParse(body);
  if (!input.success) {
    const i = input.error.issues[0]!;
    throw new UsageError(`--${i.path.join(".")}: ${i.message}`);
  }
  const c = storeChoice(args);
  return withStore(
    c,
    "mint a token",
    "while serve runs, make tokens through it: propeller tokens create, without --data-dir",
    async (s) => {
      const ids = new Identities(s);
      const t = await ids.createToken({ ...input.data, name: input.data.name ?? "break-glass" });
      if (t.role !== "admin" || c.kind === "postgres" || adminTokenFileWorks(ids, c.dataDir)) return t;
      const file = join(c.dataDir, "admin.token");
      try {
        writeAdminTokenFile(file, t.token);
      } catch (e) {
        // The token is made: it is shown all the same, once, with why the file is not it.
        process.stderr.write(`could not write ${file} (${e instanceof Error ? e.message : e}): keep the token now\n`);
        return t;
      }
      return { ...t, file };
    },
    { writes: true },
  );
}

export const tokensCommand = defineCommand({
  meta: { name: "tokens", description: "REST tokens: admin (everything) or viewer (read only)" },
  subCommands: {
    create: defineCommand({
      meta: {
        description:
          "Create a token; its text is printed once. With --data-dir (serve stopped): minted directly in the store, admin by default (break-glass)",
      },
      args: {
        role: { type: "string", description: "admin or viewer (default viewer; admin with --data-dir)" },
        name: { type: "string", description: "a name to recognise it by" },
        ttl: {
          type: "string",
          description:
            "lifetime, e.g. 90s, 30m, 12h, 7d (at most 3650d); refused with 401 after it. Default: until revoked",
        },
        ...urlArg,
        ...storeArgs,
      },
      run: ({ args }) =>
        action(async () => {
          if (args.ttl !== undefined && ttlSeconds(args.ttl) === undefined) {
            throw new UsageError(
              `--ttl must be a duration such as 90s, 30m, 12h or 7d, from 1s to 3650d, got ${JSON.stringify(args.ttl)}`,
            );
          }
          const direct = Boolean(args["data-dir"] || args.storage);
          const body = {
            role: args.role ?? (direct ? "admin" : "viewer"),
            ...(args.name ? { name: args.name } : {}),
            ...(args.ttl ? { ttl: args.ttl } : {}),
          };
          const t: TokenOut & { file?: string } = direct
            ? await mintDirectly(args, body)
            : await api<TokenOut>(args, "POST", "/tokens", body);
          if (args.json) return printJson(t);
          process.stdout.write(`${t.token}\n`);
          const until = t.expires_at ? `, expires ${t.expires_at}` : "";
          const kept = t.file
            ? `written to ${t.file} as well (it held no admin token that works): the CLI on this machine uses it`
            : "shown once, keep it now";
          process.stderr.write(`token ${t.id} (${t.name}, ${t.role}${until}): ${kept}\n`);
        }),
    }),
    list: defineCommand({
      meta: { description: "List tokens (never their text)" },
      args: { ...urlArg },
      run: ({ args }) =>
        action(async () => {
          const r = await api<{ tokens: TokenOut[] }>(args, "GET", "/tokens");
          if (args.json) return printJson(r);
          printTable(r.tokens as unknown as Record<string, unknown>[], [
            ["ID", "id"],
            ["NAME", "name"],
            ["ROLE", "role"],
            ["CREATED", "created_at"],
            ["EXPIRES", "expires_at"],
            ["REVOKED", "revoked_at"],
          ]);
        }),
    }),
    revoke: defineCommand({
      meta: { description: "Revoke a token: it stops working at once" },
      args: {
        id: { type: "positional", description: "token id (or a unique prefix of it) or name", required: true },
        force: {
          type: "boolean",
          description: "revoke the last admin token too (no one can then administer serve until it restarts)",
        },
        ...urlArg,
      },
      run: ({ args }) =>
        action(async () => {
          if (!args.id.trim()) throw new UsageError("the token to revoke is empty: give its id or name");
          // The manager resolves an id, a name or an id's start, and refuses one that could be two tokens.
          const force = args.force ? "?force=true" : "";
          const t = await api<TokenOut>(args, "DELETE", `/tokens/${encodeURIComponent(args.id)}${force}`);
          if (args.json) return printJson(t);
          process.stdout.write(`revoked token ${t.id} (${t.name}, ${t.role}) at ${t.revoked_at}\n`);
        }),
    }),
  },
});
