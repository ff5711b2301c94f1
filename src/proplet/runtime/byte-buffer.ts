// A guest's output as bytes in one buffer that doubles as it fills, up to a bound. Each write used to be kept as a
// chunk of its own (a Uint8Array each, ~100 bytes of heap even when empty): a 111-byte guest looping on empty
// fd_write calls never reached the output limit, which counts bytes, and took serve to 2 GiB and the OOM killer;
// 16 million one-byte writes, within every limit, left 2.4 GiB behind (test/attack/guest-output.test.ts).

export class ByteBuffer {
  private buf = new Uint8Array(0);
  private used = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.used;
  }

  /** Appends what fits under the bound; returns how many bytes were taken. */
  append(b: Uint8Array): number {
    const n = Math.min(b.length, this.max - this.used);
    if (n <= 0) return 0;
    if (this.used + n > this.buf.length) {
      const next = new Uint8Array(Math.min(this.max, Math.max(this.used + n, this.buf.length * 2, 256)));
      next.set(this.buf.subarray(0, this.used));
      this.buf = next;
    }
    this.buf.set(b.subarray(0, n), this.used);
    this.used += n;
    return n;
  }

  /** The bytes held (a view: valid until the next append or take). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.used);
  }

  /** The bytes held, and empties the buffer (its memory too). */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.used);
    this.buf = new Uint8Array(0);
    this.used = 0;
    return out;
  }
}
