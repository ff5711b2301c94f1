// A CBOR (RFC 8949) decoder for what `POST /fl/update_cbor` receives: the same update object a client would send
// as JSON. Hostile input is bounded: nesting depth, declared lengths checked against the bytes left, no tags kept
// (a tagged item decodes as the item). Byte strings come out as base64 text, as JSON would carry them (an
// f32-delta tensor may be sent as raw bytes). Pure.

const MAX_DEPTH = 32;

export class CborError extends Error {}

export function decodeCbor(bytes: Uint8Array): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > bytes.length) throw new CborError(`truncated at byte ${pos}`);
  };
  /** The offset of the next n bytes, which must be there. */
  const take = (n: number): number => {
    need(n);
    pos += n;
    return pos - n;
  };
  const length = (info: number): number => {
    if (info < 24) return info;
    if (info === 24) return view.getUint8(take(1));
    if (info === 25) return view.getUint16(take(2));
    if (info === 26) return view.getUint32(take(4));
    if (info === 27) {
      need(8);
      const v = view.getBigUint64(pos);
      pos += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CborError("integer beyond 2^53");
      return Number(v);
    }
    throw new CborError(`reserved length encoding ${info} at byte ${pos - 1}`);
  };
  const text = (n: number) => {
    need(n);
    pos += n;
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(pos - n, pos));
  };
  const item = (depth: number): unknown => {
    if (depth > MAX_DEPTH) throw new CborError(`nested deeper than ${MAX_DEPTH} levels`);
    need(1);
    const head = bytes[pos++]!;
    const major = head >> 5;
    const info = head & 31;
    if (info === 31 && major >= 2 && major <= 5) return indefinite(major, depth);
    switch (major) {
      case 0:
        return length(info);
      case 1:
        return -1 - length(info);
      case 2: {
        const n = length(info);
        need(n);
        pos += n;
        return Buffer.from(bytes.subarray(pos - n, pos)).toString("base64");
      }
      case 3:
        return text(length(info));
      case 4: {
        const n = length(info);
        need(n); // every item takes at least one byte: a huge declared count cannot allocate
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(item(depth + 1));
        return out;
      }
      case 5: {
        const n = length(info);
        need(n * 2);
        const out: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) {
          const k = item(depth + 1);
          put(out, k, item(depth + 1));
        }
        return out;
      }
      case 6:
        length(info);
        return item(depth + 1);
      default:
        return simple(info);
    }
  };
  const indefinite = (major: number, depth: number): unknown => {
    const BREAK = 0xff;
    if (major === 4 || major === 5) {
      const arr: unknown[] = [];
      const obj: Record<string, unknown> = {};
      while (bytes[take(1)] !== BREAK) {
        pos--;
        if (major === 4) arr.push(item(depth + 1));
        else {
          const k = item(depth + 1);
          put(obj, k, item(depth + 1));
        }
      }
      return major === 4 ? arr : obj;
    }
    const parts: unknown[] = [];
    while (bytes[take(1)] !== BREAK) {
      pos--;
      parts.push(item(depth + 1));
    }
    if (major === 3) return parts.join("");
    return Buffer.concat(parts.map((p) => Buffer.from(p as string, "base64"))).toString("base64");
  };
  const simple = (info: number): unknown => {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
      case 23:
        return null;
      case 25: {
        need(2);
        pos += 2;
        return half(view.getUint16(pos - 2));
      }
      case 26:
        return view.getFloat32(take(4));
      case 27:
        return view.getFloat64(take(8));
      default:
        throw new CborError(`unsupported simple value ${info} at byte ${pos - 1}`);
    }
  };
  const out = item(0);
  if (pos !== bytes.length) throw new CborError(`${bytes.length - pos} bytes after the item`);
  return out;
}

/**
 * A map entry as an own property, whatever its key: `__proto__` assigned plainly would replace the object's
 * prototype (JSON.parse, whose output an update otherwise is, keeps it as a key).
 */
function put(o: Record<string, unknown>, key: unknown, value: unknown): void {
  Object.defineProperty(o, typeof key === "string" ? key : String(key), {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function half(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * 2 ** -14 * (mant / 1024);
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + mant / 1024);
}
