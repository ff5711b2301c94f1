// Per-run bounds on what a guest may write into its in-memory files (the preopens, written back at exit):
// every file stays at most `maxBytes`, and all the growth of the run (files made larger, new files and
// directories) adds up to at most `maxBytes`. The check comes before the shim allocates: `ftruncate` to 4 GiB,
// `fd_allocate`, or a write at offset 2^40 gets an errno, not a 4 GiB buffer (docs/ARCHITECTURE.md, "Task
// sandbox"). PROPLET_MAX_TASK_DISK_MB sets the bound.

export const DEFAULT_TASK_DISK_MB = 64;

/** What a new file or directory is charged: the bound also caps how many a run may make (a disk block). */
export const ENTRY_BYTES = 4096;

export type DiskRefusal = "file-too-large" | "no-space";

export class DiskBudget {
  private grown = 0;

  constructor(readonly maxBytes: number) {}

  static ofMb(mb: number | undefined): DiskBudget {
    return new DiskBudget((mb ?? DEFAULT_TASK_DISK_MB) * 1024 * 1024);
  }

  /**
   * Charges a file going from `size` bytes to `end` (a write's end, a new size); nothing when it does not grow.
   * Returns why it is refused, and then charges nothing.
   */
  grow(size: number | bigint, end: number | bigint): DiskRefusal | undefined {
    const from = BigInt(size);
    const to = BigInt(end);
    if (to <= from) return undefined;
    if (to > BigInt(this.maxBytes)) return "file-too-large";
    return this.charge(Number(to - from));
  }

  /** Charges `bytes` of new data or a new entry. */
  charge(bytes: number): DiskRefusal | undefined {
    if (this.grown + bytes > this.maxBytes) return "no-space";
    this.grown += bytes;
    return undefined;
  }
}
