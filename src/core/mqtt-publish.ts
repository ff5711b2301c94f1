// The packets nearly all of a fleet's traffic is, taken apart without mqtt-packet: a read that holds only whole
// PUBLISH packets at QoS 0 or 1 (no DUP, no RETAIN) of MQTT 3.1/3.1.1, each given as mqtt-packet's parser would
// give it. Anything else (another type, a flag, a packet cut between reads, a topic past its packet) is not
// recognised, and the broker hands the bytes to mqtt-packet as before, errors and all. mqtt-packet gathers every
// read into a BufferList and walks a state machine per packet: with 10,000 proplets heartbeating that was ~2.4 µs
// of the ~22 a heartbeat cost the broker (scripts/bench/fleet.ts). Pure: src/broker/fast-publish.ts feeds it.

/** A PUBLISH as mqtt-packet's parser gives it for MQTT 3.1.1 (no properties). */
export interface PublishPacket {
  cmd: "publish";
  retain: false;
  qos: 0 | 1;
  dup: false;
  /** The remaining length, as mqtt-packet has it. */
  length: number;
  topic: string;
  payload: Buffer;
  messageId?: number;
}

const QOS0 = 0x30;
const QOS1 = 0x32;

/** The PUBLISH packets `buf` is made of, whole; undefined when it holds anything else. */
export function wholePublishes(buf: Buffer): PublishPacket[] | undefined {
  const out: PublishPacket[] = [];
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const type = buf[i]!;
    if (type !== QOS0 && type !== QOS1) return undefined;
    // The remaining length: 1 to 4 bytes of 7 bits each.
    let length = 0;
    let j = i + 1;
    for (let shift = 1; ; shift *= 128) {
      if (j >= n || j > i + 4) return undefined;
      const b = buf[j++]!;
      length += (b & 0x7f) * shift;
      if (!(b & 0x80)) break;
    }
    const end = j + length;
    if (end > n || length < 2) return undefined;
    const topicEnd = j + 2 + buf.readUInt16BE(j);
    const idEnd = type === QOS1 ? topicEnd + 2 : topicEnd;
    if (idEnd > end) return undefined;
    const topic = buf.toString("utf8", j + 2, topicEnd);
    const packet: PublishPacket =
      type === QOS1
        ? {
            cmd: "publish",
            retain: false,
            qos: 1,
            dup: false,
            length,
            topic,
            payload: buf.subarray(idEnd, end),
            messageId: buf.readUInt16BE(topicEnd),
          }
        : { cmd: "publish", retain: false, qos: 0, dup: false, length, topic, payload: buf.subarray(idEnd, end) };
    out.push(packet);
    i = end;
  }
  return out.length ? out : undefined;
}
