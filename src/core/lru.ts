// A bounded cache that keeps the recently used entries, in two generations (as quick-lru does): entries go into the
// young Map; when it holds half the bound, it becomes the old one and the old one is dropped whole. A read of an
// old entry moves it back into the young generation. Nothing is deleted one key at a time on the hot path: an
// insertion-ordered Map that dropped its first key on every insert (the way this was done before) left a deleted
// slot at its front each time, which JavaScriptCore's iterator walks over to find the first key: 1.1 µs a touch at
// 10,000 entries, and ~2.4 % of serve's main thread under the dispatch benchmark (scripts/bench/dispatch.ts).

export class Lru<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;

  /** At most `max` entries are kept (at least 2). */
  constructor(max: number) {
    this.half = Math.max(1, Math.ceil(max / 2));
  }

  /** The entry, now counted as recently used. */
  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined || this.young.has(key)) return v;
    if (!this.old.has(key)) return undefined;
    const moved = this.old.get(key) as V;
    this.old.delete(key);
    this.add(key, moved);
    return moved;
  }

  /** The entry, without counting it as used. */
  peek(key: K): V | undefined {
    return this.young.has(key) ? this.young.get(key) : this.old.get(key);
  }

  has(key: K): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  set(key: K, value: V): void {
    if (this.young.has(key)) {
      this.young.set(key, value);
      return;
    }
    this.old.delete(key);
    this.add(key, value);
  }

  delete(key: K): boolean {
    const a = this.young.delete(key);
    return this.old.delete(key) || a;
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private add(key: K, value: V): void {
    this.young.set(key, value);
    if (this.young.size < this.half) return;
    this.old = this.young;
    this.young = new Map();
  }
}
