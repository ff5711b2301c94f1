// A CBOR encoder for tests: what a client of `POST /fl/update_cbor` would send (numbers that are not integers as
// float64).

export function cbor(v: unknown): Uint8Array {
  const out: number[] = [];
  const head = (major: number, n: number) => {
    if (n < 24) out.push((major << 5) | n);
    else if (n < 256) out.push((major << 5) | 24, n);
    else if (n < 65536) out.push((major << 5) | 25, n >> 8, n & 255);
    else out.push((major << 5) | 26, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255);
  };
  const item = (x: unknown): void => {
    if (x === null) out.push(0xf6);
    else if (x === true) out.push(0xf5);
    else if (x === false) out.push(0xf4);
    else if (typeof x === "number" && Number.isInteger(x) && Math.abs(x) < 2 ** 32) {
      if (x >= 0) head(0, x);
      else head(1, -1 - x);
    } else if (typeof x === "number") {
      const b = new DataView(new ArrayBuffer(8));
      b.setFloat64(0, x);
      out.push(0xfb, ...new Uint8Array(b.buffer));
    } else if (typeof x === "string") {
      const bytes = new TextEncoder().encode(x);
      head(3, bytes.length);
      out.push(...bytes);
    } else if (Array.isArray(x)) {
      head(4, x.length);
      for (const e of x) item(e);
    } else if (typeof x === "object") {
      const entries = Object.entries(x as object);
      head(5, entries.length);
      for (const [k, e] of entries) {
        item(k);
        item(e);
      }
    } else throw new Error(`cannot encode ${typeof x}`);
  };
  item(v);
  return Uint8Array.from(out);
}
