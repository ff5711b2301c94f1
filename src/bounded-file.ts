import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/**
 * A regular file of at most `max` bytes, judged on the file opened (not on its path, which may change between a
 * look and a read), opened without blocking: a FIFO at that path hung a reader for good, `/dev/zero` or a file of
 * 2 GiB filled its memory. At most the size seen at open is read. `noFollow`: a symlink there is refused too.
 * Throws with the reason (ENOENT, "not a regular file", "larger than N bytes").
 */
export function readRegularFile(path: string, max: number, o: { noFollow?: boolean } = {}): Buffer {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (o.noFollow ? constants.O_NOFOLLOW : 0);
  const fd = openSync(path, flags);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error("not a regular file");
    if (st.size > max) throw new Error(`larger than ${max} bytes`);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < st.size) {
      const n = readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
