import { z } from "zod";
import { sha256Hex } from "../core/digest.ts";
import { Entity, Token } from "../core/identity.ts";
import { Job } from "../core/job.ts";
import { Proplet } from "../core/proplet.ts";
import { Run } from "../core/run.ts";
import { Task } from "../core/task.ts";
import type { FlKind, Storage } from "./repository.ts";
import { METRICS_RETENTION } from "./retention.ts";

// The portable archive (`propeller backup`, `restore`, scheduled snapshots): the whole store as JSON lines,
// read and written through the repository interfaces, so any backend's archive goes into any backend. Identities
// keep their hashes: the tokens and API keys a site handed out work again after a restore.
//
//   {"format":"propeller-archive","version":1,"source":"sqlite","created_at":"…"}   header
//   {"k":"module","id":"<sha256>","file":"…"}  {"k":"task","v":{…},"module":"<sha256>"}  {"k":"run","v":{…}}  {"k":"metric","of":"task","owner":"…","v":{…}} …   one record a line
//   {"end":true,"records":123}                                                          trailer: nothing cut off

export const ARCHIVE_FORMAT = "propeller-archive";
export const ARCHIVE_VERSION = 1;

const FL_KINDS: FlKind[] = ["experiment", "module", "model", "dataset", "update"];

const Header = z.object({
  format: z.literal(ARCHIVE_FORMAT),
  version: z.number().int(),
  source: z.string(),
  created_at: z.string(),
  program: z.string().optional(),
  /**
   * The site's local proplet (serve's `local-proplet-id`): `restore` puts it back in the data dir, so that the
   * restored serve's local proplet is the one its store knows (its history, the tasks pinned to it), not a new one
   * beside a dead one.
   */
  local_proplet_id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/)
    .optional(),
});
export type ArchiveHeader = z.infer<typeof Header>;

const Record_ = z.discriminatedUnion("k", [
  // A module once per content, before the first task that carries it (a thousand tasks of one 5 MB module: 5 MB).
  z.object({ k: z.literal("module"), id: z.string(), file: z.string() }),
  z.object({ k: z.literal("task"), v: Task, module: z.string().optional() }),
  z.object({ k: z.literal("run"), v: Run }),
  z.object({ k: z.literal("job"), v: Job }),
  z.object({ k: z.literal("proplet"), v: Proplet }),
  z.object({ k: z.literal("token"), v: Token }),
  z.object({ k: z.literal("entity"), v: Entity }),
  z.object({ k: z.literal("fl"), kind: z.enum(FL_KINDS), id: z.string(), doc: z.string() }),
  z.object({ k: z.literal("metric"), of: z.enum(["task", "proplet"]), owner: z.string(), v: z.unknown() }),
]);
type Record_ = z.infer<typeof Record_>;

const Trailer = z.object({ end: z.literal(true), records: z.number().int() });

/** Every task, oldest first, with its module. */
function* tasks(s: Storage) {
  const page = 500;
  const total = s.tasks.list(0, 1).total;
  // Listings are newest first: walk from the end so the archive (and a restore) keeps the order of creation.
  for (let end = total; end > 0; end -= page) {
    const from = Math.max(0, end - page);
    const items = s.tasks.list(from, end - from).items.reverse();
    for (const t of items) yield s.tasks.get(t.id) ?? t;
  }
}

/**
 * The whole store as archive lines (each ending in "\n"). Synchronous: no write can come between two reads, so
 * the archive is one consistent state (call `durable()` first to have everything acknowledged in it).
 */
export function dumpStore(s: Storage, program?: string, localPropletId?: string): string[] {
  const lines: string[] = [];
  const header: ArchiveHeader = {
    format: ARCHIVE_FORMAT,
    version: ARCHIVE_VERSION,
    source: s.kind,
    created_at: new Date().toISOString(),
    ...(program ? { program } : {}),
    ...(localPropletId ? { local_proplet_id: localPropletId } : {}),
  };
  lines.push(`${JSON.stringify(header)}\n`);
  const put = (r: Record_) => lines.push(`${JSON.stringify(r)}\n`);
  for (const v of s.tokens.all()) put({ k: "token", v });
  for (const v of s.entities.all()) put({ k: "entity", v });
  const proplets = s.proplets.all();
  for (const v of proplets) put({ k: "proplet", v });
  for (const v of s.jobs.all().reverse()) put({ k: "job", v });
  const taskIds: string[] = [];
  const modules = new Set<string>();
  for (const { file, ...v } of tasks(s)) {
    taskIds.push(v.id);
    if (!file) {
      put({ k: "task", v });
      continue;
    }
    const id = sha256Hex(file);
    if (!modules.has(id)) put({ k: "module", id, file });
    modules.add(id);
    put({ k: "task", v, module: id });
  }
  for (const id of taskIds) {
    for (const v of s.runs.listByTask(id, 0, Number.MAX_SAFE_INTEGER).items.reverse()) put({ k: "run", v });
    for (const v of s.metrics.listTask(id, 0, METRICS_RETENTION).items.reverse())
      put({ k: "metric", of: "task", owner: id, v });
  }
  for (const p of proplets)
    for (const v of s.metrics.listProplet(p.id, 0, METRICS_RETENTION).items.reverse())
      put({ k: "metric", of: "proplet", owner: p.id, v });
  for (const kind of FL_KINDS)
    for (const id of s.fl.ids(kind)) {
      const doc = s.fl.get(kind, id);
      if (doc !== undefined) put({ k: "fl", kind, id, doc });
    }
  lines.push(`${JSON.stringify({ end: true, records: lines.length - 1 })}\n`);
  return lines;
}

/** Whether a store holds nothing at all (a restore into anything else needs --force). */
export function isEmpty(s: Storage): boolean {
  return (
    s.tasks.list(0, 1).total === 0 &&
    s.tokens.all().length === 0 &&
    s.entities.all().length === 0 &&
    s.jobs.all().length === 0 &&
    s.proplets.all().length === 0 &&
    FL_KINDS.every((k) => s.fl.ids(k).length === 0)
  );
}

/** How many records of each kind, for `restore`'s report. */
export type Counts = Record<string, number>;

/**
 * Checks a whole archive (header, every record against its schema, the trailer's count) before anything is
 * written: a truncated or foreign file is refused naming its line.
 */
export function readArchive(text: string): { header: ArchiveHeader; records: Record_[]; counts: Counts } {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const parse = <S extends z.ZodType>(schema: S, i: number): z.output<S> => {
    let value: unknown;
    try {
      value = JSON.parse(lines[i] ?? "");
    } catch {
      throw new Error(`line ${i + 1} is not JSON`);
    }
    const r = schema.safeParse(value);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new Error(`line ${i + 1}: ${issue.path.join(".") || "record"}: ${issue.message}`);
    }
    return r.data;
  };
  if (lines.length < 2) throw new Error("not a Propeller archive (no header and trailer)");
  const header = parse(Header, 0);
  if (header.version > ARCHIVE_VERSION)
    throw new Error(`archive version ${header.version} is newer than this propeller reads (${ARCHIVE_VERSION})`);
  const trailer = parse(Trailer, lines.length - 1);
  if (trailer.records !== lines.length - 2)
    throw new Error(`the archive is cut off: ${lines.length - 2} records of ${trailer.records}`);
  const records: Record_[] = [];
  const modules = new Set<string>();
  const counts: Counts = {};
  // A record a store keeps by its id, twice, is refused here: the store refused it half-way through (a UNIQUE
  // constraint), and what came before was written.
  const seen = new Set<string>();
  for (let i = 1; i < lines.length - 1; i++) {
    const r = parse(Record_, i);
    const key = keyOf(r);
    if (key !== undefined) {
      if (seen.has(key)) throw new Error(`line ${i + 1}: ${key} is in the archive twice`);
      seen.add(key);
    }
    if (r.k === "module") {
      if (sha256Hex(r.file) !== r.id) throw new Error(`line ${i + 1}: module ${r.id} does not match its content`);
      modules.add(r.id);
    }
    if (r.k === "task" && r.module !== undefined && !modules.has(r.module))
      throw new Error(`line ${i + 1}: task ${r.v.id} names module ${r.module}, which no earlier line holds`);
    records.push(r);
    counts[r.k] = (counts[r.k] ?? 0) + 1;
  }
  return { header, records, counts };
}

/** What a store keys a record by ("task ID"), for the records it keeps one of by id. */
function keyOf(r: Record_): string | undefined {
  switch (r.k) {
    case "task":
    case "job":
    case "token":
    case "entity":
      return `${r.k} ${r.v.id}`;
    case "run":
      return `run ${r.v.task_id}/${r.v.run_id}`;
    default:
      return undefined;
  }
}

/** Writes checked records into a store (empty, or wiped by the caller); resolves once they are committed. */
export async function restoreStore(s: Storage, records: Record_[]): Promise<void> {
  let n = 0;
  const modules = new Map<string, string>();
  for (const r of records) {
    switch (r.k) {
      case "module":
        modules.set(r.id, r.file);
        break;
      case "task": {
        const file = r.module === undefined ? undefined : modules.get(r.module);
        s.tasks.create(file === undefined ? r.v : { ...r.v, file });
        break;
      }
      case "run":
        s.runs.create(r.v);
        break;
      case "job":
        s.jobs.create(r.v);
        break;
      case "proplet":
        s.proplets.upsert(r.v);
        break;
      case "token":
        s.tokens.create(r.v);
        break;
      case "entity":
        s.entities.create(r.v);
        break;
      case "fl":
        s.fl.put(r.kind, r.id, r.doc);
        break;
      case "metric": {
        const ts = (r.v as { timestamp?: unknown } | null)?.timestamp;
        const at = typeof ts === "string" ? ts : new Date(0).toISOString();
        if (r.of === "task") s.metrics.addTask(r.owner, at, r.v);
        else s.metrics.addProplet(r.owner, at, r.v);
        break;
      }
    }
    // Commit in pieces: a group commit of a whole large site at once holds every write in memory.
    if (++n % 1000 === 0) await s.durable();
  }
  await s.durable();
}
