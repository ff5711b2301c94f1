import type { Database, Statement } from "bun:sqlite";
import { Lru } from "../../core/lru.ts";
import { MODULE_REF, moduleRef, SHARE_FROM_CHARS } from "../modules.ts";

// Module bytes kept once per content (sha256 of the base64 text), however many tasks carry them: 50,000 tasks of
// one module would otherwise store 50,000 copies. A task's `file` column holds `@sha256:<hex>`; a count of the
// tasks that refer to each module removes it with the last one. Rows written before this kept the module inline
// and still read as they are.

/** Module texts read lately, by ref: the many tasks of one module share one string and one read. */
const CACHE_ENTRIES = 64;

export class SqliteModules {
  private addQ: Statement;
  private dropQ: Statement;
  private sweepQ: Statement;
  private getQ: Statement<{ data: string }, [string]>;
  private cache = new Lru<string, string>(CACHE_ENTRIES);

  constructor(db: Database) {
    this.addQ = db.query(
      "INSERT INTO modules (sha, data, refs) VALUES (?, ?, 1) ON CONFLICT (sha) DO UPDATE SET refs = refs + 1",
    );
    this.dropQ = db.query("UPDATE modules SET refs = refs - 1 WHERE sha = ?");
    this.sweepQ = db.query("DELETE FROM modules WHERE sha = ? AND refs <= 0");
    this.getQ = db.query("SELECT data FROM modules WHERE sha = ?");
  }

  /** What a task's `file` column holds for this module: a counted reference, or a short module itself. */
  store(file: string): string {
    return file.length < SHARE_FROM_CHARS ? file : this.ref(file);
  }

  /** One more task carries this module: returns its reference. */
  private ref(file: string): string {
    const ref = moduleRef(file);
    this.addQ.run(ref.slice(MODULE_REF.length), file);
    if (!this.cache.has(ref)) this.remember(ref, file);
    return ref;
  }

  /**
   * The one string this store keeps for a module: tasks cached in memory hold it instead of each their own copy
   * (4,096 cached tasks of a 27 KB module were 110 MB of equal strings).
   */
  shared(column: string | null, file: string | undefined): string | undefined {
    return column?.startsWith(MODULE_REF) ? (this.cache.get(column) ?? file) : file;
  }

  /** A task's `file` column value no longer refers to its module (an inline module needs nothing). */
  unref(column: string | null | undefined): void {
    if (!column?.startsWith(MODULE_REF)) return;
    const sha = column.slice(MODULE_REF.length);
    this.dropQ.run(sha);
    if (this.sweepQ.run(sha).changes > 0) this.cache.delete(column);
  }

  /** The module a `file` column value stands for. */
  resolve(column: string | null): string | undefined {
    if (!column) return undefined;
    if (!column.startsWith(MODULE_REF)) return column;
    const hit = this.cache.get(column);
    if (hit !== undefined) return hit;
    const row = this.getQ.get(column.slice(MODULE_REF.length));
    if (!row) return undefined;
    this.remember(column, row.data);
    return row.data;
  }

  private remember(ref: string, data: string): void {
    this.cache.set(ref, data);
  }

  /** After a rollback the cache may name a module the database does not hold. */
  clear(): void {
    this.cache.clear();
  }
}
