import { defineCommand } from "citty";
import { TokenCreate, ttlSeconds } from "../core/identity.ts";
import { Identities } from "../manager/identities.ts";
import { action, UsageError } from "./args.ts";
import { api, okCommand, urlArg } from "./client.ts";
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
 */
async function mintDirectly(
  args: { "data-dir"?: string; storage?: string; "postgres-url"?: string },
  body: { role: string; name?: string },
): Promise<TokenOut> {
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
    (s) => new Identities(s).createToken({ ...input.data, name: input.data.name ?? "break-glass" }),
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
              `--ttl must be a duration such as 90s, 30m, 12h or 7d, got ${JSON.stringify(args.ttl)}`,
            );
          }
          const direct = Boolean(args["data-dir"] || args.storage);
          const body = {
            role: args.role ?? (direct ? "admin" : "viewer"),
            ...(args.name ? { name: args.name } : {}),
            ...(args.ttl ? { ttl: args.ttl } : {}),
          };
          const t = direct ? await mintDirectly(args, body) : await api<TokenOut>(args, "POST", "/tokens", body);
          if (args.json) return printJson(t);
          process.stdout.write(`${t.token}\n`);
          const until = t.expires_at ? `, expires ${t.expires_at}` : "";
          process.stderr.write(`token ${t.id} (${t.name}, ${t.role}${until}): shown once, keep it now\n`);
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
    revoke: okCommand(
      "Revoke a token: it stops working at once",
      "token",
      "DELETE",
      (id) => `/tokens/${encodeURIComponent(id)}`,
    ),
  },
});
