import type { Duplex } from "node:stream";
import type { Aedes, AedesPublishPacket, Client } from "aedes";
import { AddressLimiter, isLoopback } from "../core/address-limit.ts";
import { ByteRate, type ByteRateBound } from "../core/byte-rate.ts";
import { FrameScanner } from "../core/mqtt-frame.ts";
import { OncePer } from "../core/once-per.ts";
import { log } from "../log.ts";

// The broker's bounds on what a peer makes it hold (docs/ARCHITECTURE.md, "Bounds and refusals"): packet sizes
// before and after CONNECT, connections per address, and QoS 2 messages awaiting their PUBREL.

export interface BrokerLimits {
  /** The largest packet an authenticated client may send, in bytes. */
  maxPacketBytes: number;
  /** Connections open at once from one address, and new ones a second (after a burst of that many). */
  perAddress: { max: number; perSecond: number };
  /** The same for loopback, where serve's own tools and a test fleet connect from one address. */
  loopback: { max: number; perSecond: number };
}

/** The largest payload of the protocol: module chunks are at most 8 MiB of bytes, base64 in JSON. */
export const MAX_PAYLOAD_BYTES = 16 << 20;
/** Room for a PUBLISH's topic and header besides its payload. */
export const PACKET_OVERHEAD = 64 << 10;

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPacketBytes: MAX_PAYLOAD_BYTES + PACKET_OVERHEAD,
  perAddress: { max: 100, perSecond: 20 },
  loopback: { max: 2000, perSecond: 2000 },
};

/** The packet limit for a payload of `mib` MiB. */
export const packetBytesFor = (mib: number) => mib * (1 << 20) + PACKET_OVERHEAD;

/**
 * Before CONNECT is accepted: a CONNECT holds a client id, credentials and a Last Will, a few hundred bytes for
 * every client of this protocol. Packets pipelined behind it before the CONNACK are held to it too.
 */
export const PRE_CONNECT_PACKET_BYTES = 8 << 10;
/** How long a connection may stay without a CONNECT (aedes' default is 30 s). */
export const CONNECT_TIMEOUT_MS = 10_000;
/** QoS 2 messages of one client awaiting their PUBREL (aedes' default is 1000). */
export const MAX_INFLIGHT_QOS2 = 32;

/** Connections per address (core/address-limit.ts), with a warning per address at most every 10 s. */
export function connectionAdmission(limits: BrokerLimits) {
  const limiter = new AddressLimiter((a) => (isLoopback(a) ? limits.loopback : limits.perAddress));
  const warned = new Map<string, number>();
  return {
    admit(address: string | undefined): boolean {
      const why = limiter.admit(address ?? "?", Date.now());
      if (!why) return true;
      const now = Date.now();
      if ((warned.get(address ?? "?") ?? 0) + 10_000 < now) {
        if (warned.size > 1000) warned.clear();
        warned.set(address ?? "?", now);
        log.warn(`mqtt: refused a connection: ${why}`);
      }
      return false;
    },
    release: (address: string | undefined) => limiter.release(address ?? "?"),
  };
}

/**
 * What one identity may send, in bytes a second over all its connections (a proplet's; none for a manager or the
 * gateway's proxy). Every packet was within its size bound, but a proplet sending 15 MiB results for ever, on one
 * connection or six, took serve from 96 MiB to 1.3 GiB: it read and parsed faster than it could let go.
 */
export const BYTES_PER_SECOND_PER_PROPLET = 8 << 20;
/** A burst of two of the largest packets passes at once. */
export const BURST_BYTES_PER_PROPLET = 2 * MAX_PAYLOAD_BYTES;

export interface ReadRate {
  limiter: ByteRate;
  /** The key whose bucket a client's reads spend (its identity), or none for a client not held to a rate. */
  keyOf(client: Client): string | undefined;
  /** Told each time a read waits (to say so, at most once a minute per key). */
  slowed(key: string): void;
}

/** Reads held to `bound` per identity that `keyOf` names, said in the log once a minute per identity at most. */
export function readRate(bound: ByteRateBound, keyOf: (client: Client) => string | undefined): ReadRate {
  const said = new OncePer(60_000);
  return {
    limiter: new ByteRate(bound),
    keyOf,
    slowed(key) {
      if (!said.due(key, Date.now())) return;
      log.warn(`mqtt: ${key} sends more than ${bound.perSecond >> 20} MiB a second: its reads are slowed`);
    },
  };
}

/** What a packet costs of its sender's read rate at least: 8 MiB a second is 8,192 packets a second. */
export const PACKET_FLOOR_BYTES = 1024;

/**
 * Reads the fixed header of every packet as aedes' parser takes the bytes (it calls `read()` on 'readable'), and
 * destroys the connection at once when one declares more than allowed: the small limit until the client's CONNECT
 * is accepted, `maxPacketBytes` after. The refused bytes never reach the parser.
 */
export function gated<S extends Duplex>(conn: S, maxPacketBytes: number, rate?: ReadRate): S {
  const scanner = new FrameScanner();
  const read = conn.read.bind(conn);
  let refused = false;
  let later: Timer | undefined;
  conn.once("close", () => clearTimeout(later));
  (conn as { read: (size?: number) => unknown }).read = (size?: number) => {
    const client = (conn as unknown as { client?: Client }).client;
    // Over its identity's rate: not read now. The bytes wait in the socket (TCP holds the sender back), and the
    // parser is woken when the bucket has room again.
    const key = rate && client?.connected ? rate.keyOf(client) : undefined;
    const now = key ? Date.now() : 0;
    if (key) {
      const wait = rate!.limiter.wait(key, now);
      if (wait > 0) {
        rate!.slowed(key);
        later ??= setTimeout(() => {
          later = undefined;
          conn.emit("readable");
        }, wait);
        return null;
      }
    }
    const buf = read(size) as Buffer | null;
    if (!buf || refused) return refused ? null : buf;
    const limit = client?.connected ? maxPacketBytes : PRE_CONNECT_PACKET_BYTES;
    const before = scanner.packets;
    const why = scanner.scan(buf, limit);
    // A packet costs at least PACKET_FLOOR_BYTES of the rate: 45,000 small messages a second were within 8 MiB/s,
    // and took serve's two cores (each is parsed, checked and handled, whatever its size).
    if (key) rate!.limiter.spend(key, buf.length + (scanner.packets - before) * PACKET_FLOOR_BYTES, now);
    if (!why) return buf;
    refused = true;
    log.warn(`mqtt: closed ${client?.id ? `client ${client.id}` : "a connection"}: ${why}`);
    conn.destroy();
    return null;
  };
  return conn;
}

/**
 * QoS 2 messages held for their PUBREL, in bytes per identity (over all its sessions): a client sending more is
 * refused (aedes then closes it). A clean session's held messages go when it disconnects, as MQTT has it: aedes
 * would keep them until the same client id connects again.
 */
export function boundQos2(aedes: Aedes, maxBytes: number, ownerOf: (client: Client) => string | undefined): void {
  type Packet = AedesPublishPacket & { messageId: number };
  const p = (
    aedes as unknown as {
      persistence: {
        incomingStorePacket(client: Client, packet: Packet): Promise<void>;
        incomingDelPacket(client: Client, packet: Packet): Promise<void>;
        cleanIncoming?(client: Client): Promise<void>;
      };
    }
  ).persistence;
  const held = new Map<string, { owner: string; sizes: Map<number, number> }>();
  const used = new Map<string, number>();
  const drop = (clientId: string, messageId?: number) => {
    const h = held.get(clientId);
    if (!h) return;
    for (const [id, size] of h.sizes) {
      if (messageId !== undefined && id !== messageId) continue;
      h.sizes.delete(id);
      const left = (used.get(h.owner) ?? 0) - size;
      if (left > 0) used.set(h.owner, left);
      else used.delete(h.owner);
    }
    if (h.sizes.size === 0) held.delete(clientId);
  };
  const store = p.incomingStorePacket.bind(p);
  const del = p.incomingDelPacket.bind(p);
  const clean = p.cleanIncoming?.bind(p);
  p.incomingStorePacket = async (client, packet) => {
    const owner = ownerOf(client) ?? client.id;
    // The packet object besides its bytes: a message of a few bytes still costs the store an entry.
    const size = (packet.payload as Buffer).length + packet.topic.length + 256;
    drop(client.id, packet.messageId);
    const total = (used.get(owner) ?? 0) + size;
    if (total > maxBytes) throw new Error(`over ${maxBytes} bytes of QoS 2 messages awaiting PUBREL`);
    used.set(owner, total);
    const h = held.get(client.id) ?? { owner, sizes: new Map<number, number>() };
    held.set(client.id, h);
    h.sizes.set(packet.messageId, size);
    return store(client, packet);
  };
  p.incomingDelPacket = async (client, packet) => {
    await del(client, packet);
    drop(client.id, packet.messageId);
  };
  if (clean) {
    p.cleanIncoming = async (client) => {
      await clean(client);
      drop(client.id);
    };
    aedes.on("clientDisconnect", (client) => {
      if (client.clean && held.has(client.id)) void clean(client).then(() => drop(client.id));
    });
  }
}
