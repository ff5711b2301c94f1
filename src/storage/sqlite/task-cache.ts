import { Lru } from "../../core/lru.ts";
import type { Task } from "../../core/task.ts";

// Tasks as last written or read, already parsed, so the hot single-task read (every start and every result)
// costs neither JSON.parse nor a schema parse: measured, parsing each read cost 6 % of dispatch throughput.
// Bounded by count and by module size: a module over MAX_FILE_CHARS is not kept (reading it again is cheaper than
// holding it). Callers get a fresh top-level object; nested values are shared and never mutated by the manager.

const MAX_ENTRIES = 4096;
const MAX_FILE_CHARS = 256 << 10;

type Doc = Omit<Task, "file">;
interface Entry {
  doc: Doc;
  file: string | undefined;
}

export class TaskCache {
  private entries = new Lru<string, Entry>(MAX_ENTRIES);

  get(id: string): Task | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    return e.file ? { ...e.doc, file: e.file } : { ...e.doc };
  }

  /** The cached document itself, for a caller that only reads it (no copy made); undefined when not cached. */
  peek(id: string): Doc | undefined {
    return this.entries.peek(id)?.doc;
  }

  /** The metadata last written for a task (undefined: none), or null when the cache does not know the task. */
  metadataOf(id: string): Task["metadata"] | null {
    const e = this.entries.peek(id);
    return e ? e.doc.metadata : null;
  }

  /** The whole stored task: its document and its module (none: `file` undefined). */
  put(doc: Doc, file: string | undefined): void {
    if (file && file.length > MAX_FILE_CHARS) this.entries.delete(doc.id);
    else this.entries.set(doc.id, { doc, file });
  }

  /** A write of the document alone: the module stays the one the entry knew (an unknown task is not added). */
  putDoc(doc: Doc): void {
    const e = this.entries.peek(doc.id);
    if (e) this.put(doc, e.file);
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  clear(): void {
    this.entries.clear();
  }
}
