import { ConsoleStdout, type File, OpenFile, type WASI } from "@bjorn3/browser_wasi_shim";
import { type DiskBudget, type DiskRefusal, ENTRY_BYTES } from "./disk-cap.ts";

// The disk bound (disk-cap.ts) in front of @bjorn3/browser_wasi_shim's WASI preview 1: the shim grows a file to
// whatever size a call names (`new Uint8Array(offset + len)`), so each call that can grow a file, or make one, is
// checked here first and refused with an errno before the shim sees it. A write past a file's end is also given
// room here, in a buffer that doubles (the shim copies the whole file into a new one on every such write: a
// 64 MiB file written 64 KiB at a time copied 32 GB).

const ERRNO_FBIG = 22;
const ERRNO_FAULT = 21;
const ERRNO_INVAL = 28;
/**
 * The most iovecs one read or write may name, as Linux's writev (EINVAL past it). The shim makes a JS object and
 * a copy per iovec before it writes anything: one fd_write naming 8 million empty iovecs (64 MiB of the guest's
 * zeroed memory) took serve's heap 3 GiB up, in a single host call no interrupt check could stop.
 */
export const IOV_MAX = 1024;
const ERRNO_NOSPC = 51;
const OFLAGS_CREAT = 1;

type Fn = (...a: never[]) => unknown;

const errno = (r: DiskRefusal) => (r === "file-too-large" ? ERRNO_FBIG : ERRNO_NOSPC);

/** Spare room behind each file's data: `data` is a view of the first `size` bytes of it. */
const spare = new WeakMap<File, Uint8Array>();

/** Makes `file` at least `end` bytes (zeros after its old end), in a buffer that doubles up to `max`. */
function room(file: File, end: number, max: number): void {
  const size = file.data.byteLength;
  if (end <= size) return;
  let buf = spare.get(file);
  if (!buf || buf.buffer !== file.data.buffer || file.data.byteOffset !== 0 || buf.byteLength < end) {
    buf = new Uint8Array(Math.max(end, Math.min(max, size * 2)));
    buf.set(file.data);
    spare.set(file, buf);
  } else buf.fill(0, size, end);
  file.data = buf.subarray(0, end);
}

export function capWasi(wasi: WASI, budget: DiskBudget): Record<string, Fn> {
  const view = () => {
    const memory = (wasi as unknown as { inst?: { exports: { memory?: unknown } } }).inst?.exports.memory;
    return memory instanceof WebAssembly.Memory ? new DataView(memory.buffer) : undefined;
  };
  /** The bytes an iovec list would write (as far as it lies in memory: the shim faults on the rest). */
  const iovBytes = (ptr: number, count: number): number => {
    const v = view();
    if (!v) return 0;
    let n = 0;
    for (let i = 0; i < count && ptr + 8 * i + 8 <= v.byteLength; i++) n += v.getUint32(ptr + 8 * i + 4, true);
    return n;
  };
  const pathAt = (ptr: number, len: number): string | undefined => {
    const v = view();
    if (!v || ptr + len > v.byteLength) return undefined;
    return new TextDecoder().decode(new Uint8Array(v.buffer, ptr, len));
  };
  const file = (fd: number) => {
    const f = wasi.fds[fd];
    return f instanceof OpenFile ? f : undefined;
  };
  const check = (fd: number, end: () => bigint): number | undefined => {
    const f = file(fd);
    if (!f) return undefined;
    const r = budget.grow(f.file.size, end());
    return r && errno(r);
  };
  /** A write to `fd` ending at `end`, with the file grown first; the growth is undone if the shim refuses it. */
  const writing = (fd: number, end: () => bigint, write: () => number): number => {
    const refused = check(fd, end);
    if (refused !== undefined) return refused;
    const f = file(fd);
    if (!f || f.file.readonly) return write();
    const before = f.file.data;
    room(f.file, Number(end()), budget.maxBytes);
    const r = write();
    if (r !== 0) f.file.data = before;
    return r;
  };
  const {
    fd_write,
    fd_pwrite,
    fd_read,
    fd_pread,
    fd_allocate,
    fd_filestat_set_size,
    path_open,
    path_create_directory,
    path_symlink,
    path_link,
  } = wasi.wasiImport as Record<string, (...a: unknown[]) => number>;
  /** A new entry in directory `fd` at `path` (none when it exists). */
  const creating = (fd: number, ptr: number, len: number): number | undefined => {
    const dir = wasi.fds[fd] as { path_lookup?: (p: string, f: number) => { inode_obj: unknown } } | undefined;
    const path = pathAt(ptr, len);
    if (path === undefined || !dir?.path_lookup) return undefined; // the shim answers for a bad path or fd
    if (dir.path_lookup(path, 0).inode_obj) return undefined;
    const r = budget.charge(ENTRY_BYTES);
    return r && errno(r);
  };
  /**
   * A write to stdout or stderr, handed to the capture as views of the guest's memory (which copies them): the
   * shim made an object and a copy per iovec, and a join of them, per call. An iovec outside memory is EFAULT.
   */
  const toConsole = (c: ConsoleStdout, iovs: number, n: number, out: number): number => {
    const v = view();
    if (!v || iovs + 8 * n > v.byteLength || out + 4 > v.byteLength) return ERRNO_FAULT;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const buf = v.getUint32(iovs + 8 * i, true);
      const len = v.getUint32(iovs + 8 * i + 4, true);
      if (buf + len > v.byteLength) return ERRNO_FAULT;
      if (len > 0) c.write(new Uint8Array(v.buffer, buf, len));
      total += len;
    }
    v.setUint32(out, total, true);
    return 0;
  };
  return {
    fd_write: (fd: number, iovs: number, n: number, out: number) => {
      if (n > IOV_MAX) return ERRNO_INVAL;
      const c = wasi.fds[fd];
      return c instanceof ConsoleStdout
        ? toConsole(c, iovs, n, out)
        : writing(
            fd,
            () => file(fd)!.file_pos + BigInt(iovBytes(iovs, n)),
            () => fd_write!(fd, iovs, n, out),
          );
    },
    fd_pwrite: (fd: number, iovs: number, n: number, offset: bigint, out: number) =>
      n > IOV_MAX
        ? ERRNO_INVAL
        : writing(
            fd,
            () => BigInt(offset) + BigInt(iovBytes(iovs, n)),
            () => fd_pwrite!(fd, iovs, n, offset, out),
          ),
    fd_read: (fd: number, iovs: number, n: number, out: number) =>
      n > IOV_MAX ? ERRNO_INVAL : fd_read!(fd, iovs, n, out),
    fd_pread: (fd: number, iovs: number, n: number, offset: bigint, out: number) =>
      n > IOV_MAX ? ERRNO_INVAL : fd_pread!(fd, iovs, n, offset, out),
    fd_allocate: (fd: number, offset: bigint, len: bigint) =>
      check(fd, () => BigInt(offset) + BigInt(len)) ?? fd_allocate!(fd, offset, len),
    fd_filestat_set_size: (fd: number, size: bigint) =>
      check(fd, () => BigInt(size)) ?? fd_filestat_set_size!(fd, size),
    path_open: (fd: number, dirflags: number, ptr: number, len: number, oflags: number, ...rest: unknown[]) =>
      ((oflags & OFLAGS_CREAT) !== 0 ? creating(fd, ptr, len) : undefined) ??
      path_open!(fd, dirflags, ptr, len, oflags, ...rest),
    path_create_directory: (fd: number, ptr: number, len: number) =>
      creating(fd, ptr, len) ?? path_create_directory!(fd, ptr, len),
    path_symlink: (oldPtr: number, oldLen: number, fd: number, ptr: number, len: number) =>
      creating(fd, ptr, len) ?? path_symlink!(oldPtr, oldLen, fd, ptr, len),
    path_link: (oldFd: number, flags: number, oldPtr: number, oldLen: number, fd: number, ptr: number, len: number) =>
      creating(fd, ptr, len) ?? path_link!(oldFd, flags, oldPtr, oldLen, fd, ptr, len),
  } as Record<string, Fn>;
}
