import BufferListStream from "bl";

// mqtt-packet's parser keeps a connection's incoming bytes in a `bl` list and reads each packet's header a byte at
// a time (readUInt8, 16 call sites) and its lengths with readUInt16BE/readUInt32BE. bl answers each read by slicing
// a new Buffer out of the list and reading from that: a Buffer object made per byte read; a topic is read as text
// the same way. Profiled at QoS 0 (scripts/bench/broker.ts --profile), those slices were the broker's hottest
// function. These reads take the bytes where they lie; a read that spans two of the list's buffers, or falls outside
// the list, is left to bl (which also throws bl's own RangeError).
//
// And every chunk appended was wrapped in a new Buffer made from `chunk.buffer`; on JavaScriptCore reading `.buffer`
// of a typed array makes it an ArrayBuffer object of its own. A Buffer is appended as it is: the same bytes, and
// already the type the list holds.

interface List {
  _bufs: Buffer[];
  length: number;
}
type Read = (this: List, offset?: number) => number;
type Attach = (this: List, buf: unknown, attacher: (this: List, b: Buffer) => void, prepend?: boolean) => unknown;
type ToString = (this: List, encoding?: BufferEncoding, start?: number, end?: number) => string;

/** The buffer holding the byte at `offset` and the byte's place in it, or undefined when out of the list. */
function locate(list: List, offset: number): [Buffer, number] | undefined {
  if (!(offset >= 0 && offset < list.length)) return undefined;
  const bufs = list._bufs;
  let i = 0;
  let o = offset;
  while (o >= bufs[i]!.length) o -= bufs[i++]!.length;
  return [bufs[i]!, o];
}

function fastRead(original: Read, width: number, read: (b: Buffer, o: number) => number): Read {
  return function (this: List, offset = 0) {
    const at = locate(this, offset);
    if (!at || at[1] + width > at[0].length) return original.call(this, offset);
    return read(at[0], at[1]);
  };
}

function fastToString(original: ToString): ToString {
  return function (this: List, encoding, start, end) {
    if (typeof start !== "number" || typeof end !== "number" || end > this.length || end <= start)
      return original.call(this, encoding, start, end);
    const at = locate(this, start);
    if (!at || at[1] + (end - start) > at[0].length) return original.call(this, encoding, start, end);
    return at[0].toString(encoding, at[1], at[1] + (end - start));
  };
}

for (const proto of [BufferListStream.prototype, BufferListStream.BufferList.prototype] as unknown as {
  readUInt8: Read;
  readUInt16BE: Read;
  readUInt32BE: Read;
  toString: ToString;
  _attach: Attach;
}[]) {
  const attach = proto._attach;
  proto._attach = function (buf, attacher, prepend) {
    if (!Buffer.isBuffer(buf)) return attach.call(this, buf, attacher, prepend);
    attacher.call(this, buf);
    return this;
  };
  proto.readUInt8 = fastRead(proto.readUInt8, 1, (b, o) => b[o]!);
  proto.readUInt16BE = fastRead(proto.readUInt16BE, 2, (b, o) => b.readUInt16BE(o));
  proto.readUInt32BE = fastRead(proto.readUInt32BE, 4, (b, o) => b.readUInt32BE(o));
  proto.toString = fastToString(proto.toString);
}
