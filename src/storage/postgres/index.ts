import { SQL } from "bun";
import { Entity, Token } from "../../core/identity.ts";
import { Job } from "../../core/job.ts";
import { Proplet } from "../../core/proplet.ts";
import { Run } from "../../core/run.ts";
import { Task } from "../../core/task.ts";
import { openMemory } from "../memory/index.ts";
import type { Storage } from "../repository.ts";
import { type SchemaReport, SchemaTooNew } from "../schema.ts";
import { readDoc } from "../sqlite/doc.ts";
import { type Fence, PgJournal } from "./journal.ts";
import { migrate } from "./migrations.ts";
import { redact } from "./url.ts";

// PostgreSQL (`serve --storage postgres`): the durable copy, and what two managers of one site share. The
// manager's reads are synchronous and hot (every start and result reads its task), so the working set is held in
// memory, loaded at start, and every change is written through in group commits before it is acknowledged
// (`durable()`). Only the active manager writes; a stand-by loads the store when it takes over.

export interface PostgresStorage extends Storage {
  sql: SQL;
}

export async function openPostgres(url: string, fence?: Fence): Promise<PostgresStorage> {
  const sql = new SQL(url, { max: 4 });
  let schema: SchemaReport;
  try {
    schema = await migrate(sql, `PostgreSQL at ${redact(url)}`);
  } catch (e) {
    await sql.close().catch(() => {});
    if (e instanceof SchemaTooNew) throw e;
    throw new Error(`PostgreSQL at ${redact(url)}: ${e instanceof Error ? e.message : e}`);
  }
  const journal = new PgJournal(sql, fence);
  const store = openMemory(journal, "postgres");
  journal.paused = true;
  try {
    await load(sql, store);
  } finally {
    journal.paused = false;
  }
  return {
    ...store,
    schema,
    sql,
    // Assigning a transaction id makes the statement a write: it commits a WAL record (and waits for it to be
    // flushed), and fails on a read-only server, with no table of its own.
    probe: async () => {
      await sql`SELECT pg_current_xact_id()`;
    },
    close: async () => {
      try {
        await journal.close();
      } finally {
        await sql.close();
      }
    },
  };
}

/** Reads every row into the memory store, in the orders the repositories keep. */
async function load(sql: SQL, s: Storage): Promise<void> {
  for (const r of await sql`SELECT doc, file FROM tasks ORDER BY created_at, id`) {
    const t = readDoc(Task, r.doc, "task");
    s.tasks.create(r.file ? { ...t, file: r.file } : t);
  }
  for (const r of await sql`SELECT doc FROM runs ORDER BY seq`) s.runs.create(readDoc(Run, r.doc, "run"));
  for (const r of await sql`SELECT doc FROM jobs ORDER BY created_at`) s.jobs.create(readDoc(Job, r.doc, "job"));
  for (const r of await sql`SELECT doc FROM proplets`) s.proplets.upsert(readDoc(Proplet, r.doc, "proplet"));
  for (const r of await sql`SELECT kind, owner, at, doc FROM metrics ORDER BY seq`) {
    if (r.kind === "task") s.metrics.addTask(r.owner, r.at, JSON.parse(r.doc));
    else s.metrics.addProplet(r.owner, r.at, JSON.parse(r.doc));
  }
  for (const r of await sql`SELECT doc FROM tokens`) s.tokens.create(readDoc(Token, r.doc, "token"));
  for (const r of await sql`SELECT doc FROM entities`) s.entities.create(readDoc(Entity, r.doc, "entity"));
  for (const r of await sql`SELECT kind, id, doc FROM fl_docs`) s.fl.put(r.kind, r.id, r.doc);
}
