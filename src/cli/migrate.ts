import { defineCommand } from "citty";
import { PROGRAM } from "../version.ts";
import { action, UsageError } from "./args.ts";
import { schemaStatus, storeArgs, storeChoice, where, withStore } from "./store.ts";

// `propeller migrate [--dry-run]`: what a store's schema lacks, read without changing anything; applied as serve
// would on start (sqlite: after a snapshot into <data-dir>/snapshots).

export const migrateCommand = defineCommand({
  meta: {
    name: "migrate",
    description: "List (--dry-run) or apply the schema migrations a stopped store lacks; serve applies them on start",
  },
  args: {
    "dry-run": { type: "boolean", description: "list the pending migrations, change nothing", default: false },
    ...storeArgs,
  },
  run: ({ args }) =>
    action(async () => {
      const c = storeChoice(args);
      const s = await schemaStatus(c);
      if (!s) throw new UsageError(`no ${c.kind} store at ${where(c)}: serve creates one at the newest schema`);
      const out = process.stdout;
      out.write(`${s.where}: schema version ${s.current}, ${PROGRAM} knows ${s.latest}\n`);
      if (s.pending.length === 0) return out.write("nothing to migrate\n");
      out.write(`${s.pending.length} pending:\n`);
      for (const p of s.pending) out.write(`  ${p.version}: ${p.what}\n`);
      if (args["dry-run"]) return;
      const report = await withStore(
        c,
        "migrate",
        "stop it first: serve applies them on start",
        async (st) => st.schema,
        {
          writes: true,
        },
      );
      out.write(`migrated from schema version ${report?.from} to ${report?.to}\n`);
      if (report?.snapshot) out.write(`the store as it was: ${report.snapshot}\n`);
      else if (c.kind === "postgres") out.write("no snapshot taken: PostgreSQL is backed up with its own tools\n");
    }),
});
