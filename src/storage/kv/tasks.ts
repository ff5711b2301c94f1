import type { Key, RootDatabase } from "lmdb";
import { metadataText } from "../../core/metadata.ts";
import type { Task } from "../../core/task.ts";
import type { TaskFind } from "../../core/task-query.ts";
import { findTasks } from "../find.ts";
import { MODULE_REF, moduleRef, SHARE_FROM_CHARS } from "../modules.ts";
import type { ListResult, TaskRepository } from "../repository.ts";

// Tasks in LMDB: the document and its module under their own keys, and one index key per query the manager makes
// (docs/ARCHITECTURE.md, "Storage"). Keys are arrays, ordered element by element; "\uffff" ends a range because it
// sorts after every string and number.

export const END = "\uffff";
type Doc = Omit<Task, "file">;
interface Stored {
  doc: Doc;
  /** Creation order, for a group's tasks. */
  seq: number;
}

const metaPairs = (t: Doc): [string, string][] =>
  Object.entries(t.metadata ?? {}).flatMap(([k, v]) => {
    const text = metadataText(v);
    return text === undefined ? [] : [[k, text] as [string, string]];
  });

export class KvTasks implements TaskRepository {
  constructor(private db: RootDatabase) {}

  private stored(id: string): Stored | undefined {
    return this.db.get(["t", id]) as Stored | undefined;
  }

  private add(key: Key[], n: number): void {
    this.db.put(key, ((this.db.get(key) as number | undefined) ?? 0) + n);
  }

  /** The index keys of a task, to write or remove together. */
  private indexKeys(t: Doc, seq: number): Key[][] {
    const keys: Key[][] = [
      ["tc", t.created_at, t.id],
      ["ts", t.state, t.id],
    ];
    if (t.job_id) keys.push(["tg", "job", t.job_id, seq, t.id]);
    if (t.workflow_id) keys.push(["tg", "workflow", t.workflow_id, seq, t.id]);
    if (t.schedule) keys.push(["tsch", t.id]);
    for (const [k, v] of metaPairs(t)) keys.push(["tm", k, v, t.created_at, t.id]);
    return keys;
  }

  private write(doc: Doc, seq: number, before: Stored | undefined): void {
    // Only the index keys that changed are written: most updates change the state alone.
    const was = before ? this.indexKeys(before.doc, before.seq) : [];
    const now = this.indexKeys(doc, seq);
    const wasSet = new Set(was.map((k) => JSON.stringify(k)));
    const nowSet = new Set(now.map((k) => JSON.stringify(k)));
    for (const k of was) if (!nowSet.has(JSON.stringify(k))) this.db.remove(k);
    for (const k of now) if (!wasSet.has(JSON.stringify(k))) this.db.put(k, null);
    this.db.put(["t", doc.id], { doc, seq } satisfies Stored);
    if (before?.doc.state !== doc.state) {
      if (before) this.add(["n", "state", before.doc.state], -1);
      this.add(["n", "state", doc.state], 1);
    }
  }

  /** What a task's ["f", id] key holds: a counted reference to its module (../modules.ts), or a short one itself. */
  private store(file: string): string {
    return file.length < SHARE_FROM_CHARS ? file : this.ref(file);
  }

  private ref(file: string): string {
    const ref = moduleRef(file);
    const m = this.db.get(["mod", ref]) as { data: string; refs: number } | undefined;
    this.db.put(["mod", ref], { data: file, refs: (m?.refs ?? 0) + 1 });
    return ref;
  }

  /** A task's ["f", id] value no longer refers to its module; the last one removes it. */
  private unref(column: string | undefined): void {
    if (!column?.startsWith(MODULE_REF)) return;
    const m = this.db.get(["mod", column]) as { data: string; refs: number } | undefined;
    if (!m) return;
    if (m.refs <= 1) this.db.remove(["mod", column]);
    else this.db.put(["mod", column], { ...m, refs: m.refs - 1 });
  }

  private resolve(column: string | undefined): string | undefined {
    if (!column?.startsWith(MODULE_REF)) return column;
    return (this.db.get(["mod", column]) as { data: string } | undefined)?.data;
  }

  create(task: Task): void {
    this.db.transactionSync(() => {
      if (this.stored(task.id)) throw new Error(`task ${task.id} already exists`);
      const { file, ...doc } = task;
      const seq = ((this.db.get(["n", "seq"]) as number | undefined) ?? 0) + 1;
      this.db.put(["n", "seq"], seq);
      this.add(["n", "tasks"], 1);
      if (file) this.db.put(["f", task.id], this.store(file));
      this.write(doc, seq, undefined);
    });
  }

  get(id: string): Task | undefined {
    const s = this.stored(id);
    if (!s) return undefined;
    const file = this.resolve(this.db.get(["f", id]) as string | undefined);
    return file ? { ...s.doc, file } : { ...s.doc };
  }

  update(task: Task, withFile = false): void {
    this.db.transactionSync(() => {
      const before = this.stored(task.id);
      if (!before) return;
      const { file, ...doc } = task;
      if (withFile) {
        this.unref(this.db.get(["f", task.id]) as string | undefined);
        if (file) this.db.put(["f", task.id], this.store(file));
        else this.db.remove(["f", task.id]);
      }
      this.write(doc, before.seq, before);
    });
  }

  delete(id: string): boolean {
    return this.db.transactionSync(() => {
      const before = this.stored(id);
      if (!before) return false;
      for (const k of this.indexKeys(before.doc, before.seq)) this.db.remove(k);
      this.db.remove(["t", id]);
      this.unref(this.db.get(["f", id]) as string | undefined);
      this.db.remove(["f", id]);
      this.add(["n", "tasks"], -1);
      this.add(["n", "state", before.doc.state], -1);
      return true;
    });
  }

  find(f: TaskFind, offset: number, limit: number): ListResult<Task> {
    const docs = (function* (db: RootDatabase) {
      for (const { value } of db.getRange({ start: ["t"], end: ["t", END] })) yield (value as Stored).doc;
    })(this.db);
    const r = findTasks(docs, f, offset, limit);
    return { total: r.total, items: r.items.map((t) => ({ ...t })) };
  }

  /** Keys of a range as arrays (lmdb's iterables are lazy). */
  private keys(o: { start: Key; end: Key; reverse?: boolean; offset?: number; limit?: number }): Key[][] {
    return Array.from(this.db.getKeys(o)) as Key[][];
  }

  /** Ids from an index range, newest (last key) first. */
  private newest(prefix: Key[], offset: number, limit: number): string[] {
    return this.keys({ start: [...prefix, END], end: prefix, reverse: true, offset, limit }).map(
      (k) => k.at(-1) as string,
    );
  }

  private docs(ids: string[]): Task[] {
    return ids.map((id) => ({ ...this.stored(id)!.doc }));
  }

  list(offset: number, limit: number, metadata?: Record<string, string>): ListResult<Task> {
    if (!metadata || !Object.keys(metadata).length) {
      const total = (this.db.get(["n", "tasks"]) as number | undefined) ?? 0;
      return { total, items: this.docs(this.newest(["tc"], offset, limit)) };
    }
    // The pair with the fewest tasks walks its index; the others are checked on each task's document.
    const pairs = Object.entries(metadata).map(([k, v]) => ({
      prefix: ["tm", k, v],
      n: this.db.getKeysCount({ start: ["tm", k, v], end: ["tm", k, v, END] }),
    }));
    pairs.sort((a, b) => a.n - b.n);
    const [first, ...rest] = pairs;
    if (!rest.length) return { total: first!.n, items: this.docs(this.newest(first!.prefix, offset, limit)) };
    const matches = this.newest(first!.prefix, 0, first!.n).filter((id) => {
      const meta = this.stored(id)!.doc.metadata;
      return rest.every((p) => metadataText(meta?.[p.prefix[1] as string]) === p.prefix[2]);
    });
    return { total: matches.length, items: this.docs(matches.slice(offset, offset + limit)) };
  }

  listByState(states: number[]): Task[] {
    return states.flatMap((s) =>
      this.keys({ start: ["ts", s], end: ["ts", s, END] }).map((k) => this.get(k[2] as string)!),
    );
  }

  listByGroup(kind: "job" | "workflow", id: string): Task[] {
    return this.keys({ start: ["tg", kind, id], end: ["tg", kind, id, END] }).map((k) => this.get(k[4] as string)!);
  }

  groupIds(kind: "job" | "workflow"): string[] {
    const ids = new Set<string>();
    for (const k of this.keys({ start: ["tg", kind], end: ["tg", kind, END] })) ids.add(k[2] as string);
    return [...ids];
  }

  countByState(): Record<number, number> {
    const out: Record<number, number> = {};
    for (const { key, value } of this.db.getRange({ start: ["n", "state"], end: ["n", "state", END] })) {
      if ((value as number) > 0) out[(key as Key[])[2] as number] = value as number;
    }
    return out;
  }

  listScheduled(): Task[] {
    return this.docs(this.keys({ start: ["tsch"], end: ["tsch", END] }).map((k) => k[1] as string));
  }

  idsStartingWith(prefix: string, limit: number): string[] {
    return this.keys({ start: ["t", prefix], end: ["t", `${prefix}${END}`], limit }).map((k) => k[1] as string);
  }
}
