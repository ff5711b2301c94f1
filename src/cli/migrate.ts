import { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SQL } from "bun";
import { defineCommand } from "citty";
import { KV_SCHEMA, kvRecorded } from "../storage/kv/index.ts";
import { pgStatus } from "../storage/postgres/migrations.ts";
import { redact } from "../storage/postgres/url.ts";
import { type SchemaStatus, SchemaTooNew, statusOf } from "../storage/schema.ts";
import { MIGRATIONS, recorded } from "../storage/sqlite/migrations.ts";
import { PROGRAM } from "../version.ts";
import { action, UsageError } from "./args.ts";
import { type StoreChoice, storeArgs, storeChoice, where, withStore } from "./store.ts";

// `propeller migrate [--dry-run]`: what a store's schema lacks, read without changing anything; applied as serve
// would on start (sqlite: after a snapshot into <data-dir>/snapshots).

/** The schema of a store, read only; undefined when there is no store there yet. */
async function status(c: StoreChoice): Promise<SchemaStatus | undefined> {
  if (c.kind === "sqlite") {
    const file = join(c.dataDir, "propeller.db");
    if (!existsSync(file)) return undefined;
    const db = new Database(file, { readonly: true });
    try {
      return statusOf(file, recorded(db), MIGRATIONS);
    } finally {
      db.close();
    }
  }
  if (c.kind === "kv") {
    const dir = join(c.dataDir, "kv");
    if (!existsSync(join(dir, "data.mdb"))) return undefined;
    const { open } = await import("lmdb");
    const db = open({ path: dir, readOnly: true, encoding: "msgpack" });
    try {
      return statusOf(dir, kvRecorded(db), KV_SCHEMA);
    } finally {
      await db.close();
    }
  }
  const sql = new SQL(c.postgresUrl!, { max: 1 });
  try {
    return await pgStatus(sql, `PostgreSQL at ${redact(c.postgresUrl!)}`);
  } finally {
    await sql.close();
  }
}

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
      let s: SchemaStatus | undefined;
      try {
        s = await status(c);
      } catch (e) {
        if (e instanceof SchemaTooNew) throw new SchemaTooNew(e.where, e.stored, e.known, PROGRAM);
        throw e;
      }
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
