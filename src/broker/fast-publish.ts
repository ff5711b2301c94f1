import type { Duplex } from "node:stream";
import { wholePublishes } from "../core/mqtt-publish.ts";

// A read of whole QoS 0/1 PUBLISH packets (core/mqtt-publish.ts) from a connected MQTT 3.1/3.1.1 client goes to
// aedes as packets, as if mqtt-packet's parser had emitted them: aedes then does everything it does for a packet
// (keep-alive, topic checks, authorisation, publishing, acknowledgements, errors). Only when the parser holds
// nothing of an earlier read, so the order of packets stays the stream's. The size limits (limits.ts `gated`) see
// the bytes first.

interface ParserState {
  error: unknown;
  _stateCounter: number;
  _list: { length: number };
  emit(event: "packet", packet: unknown): void;
}

interface ClientState {
  connected: boolean;
  closed: boolean;
  version: number | null;
  _parser?: ParserState;
}

export function fastPublish<S extends Duplex>(conn: S): S {
  const read = conn.read.bind(conn);
  (conn as { read: (size?: number) => unknown }).read = (size?: number) => {
    const buf = read(size) as Buffer | null;
    if (!buf) return buf;
    const client = (conn as unknown as { client?: ClientState }).client;
    if (!client?.connected || client.closed || (client.version !== 4 && client.version !== 3)) return buf;
    const parser = client._parser;
    // (Fields of aedes 1 and mqtt-packet 9: under others the bytes go to the parser as ever, and
    // test/unit/broker/fast-publish.test.ts says this path is no longer taken.)
    if (!parser?._list || parser.error || parser._stateCounter !== 0 || parser._list.length !== 0) return buf;
    const packets = wholePublishes(buf);
    if (!packets) return buf;
    for (const p of packets) parser.emit("packet", p);
    return null;
  };
  return conn;
}
