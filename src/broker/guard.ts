import type { Aedes, AedesPublishPacket, Client } from "aedes";
import {
  aclFor,
  addressedTopics,
  addresseeOf,
  checkSelf,
  clientIdRefusal,
  mayPublishFlUpdate,
  type Peer,
  selfTopics,
  stampRequester,
} from "../core/acl.ts";
import type { EntityKind } from "../core/identity.ts";
import { Folded, OncePer } from "../core/once-per.ts";
import { type Channel, topics } from "../core/topics.ts";
import { log } from "../log.ts";
import { parsedOf, rememberParsed } from "./parsed.ts";

/** A proplet identity's connections open at once (each with another client id). */
export const MAX_CONNECTIONS_PER_PROPLET = 4;

/** Where a refused publish sent again goes to be acked and forgotten. */
const DROPPED = "$propeller/refused";

/** Authentication for the broker: unset, anyone may connect and publish anything (`serve --no-auth`). */
export interface BrokerAuth {
  /** The kind of the entity these credentials name, if they are valid. */
  authenticate(id: string, key: string): EntityKind | undefined;
  channel: Channel;
}

/**
 * Installs authentication and the ACL (core/acl.ts) on the broker: CONNECT needs username = entity id and
 * password = its API key, and a client id of that identity; a peer publishes and subscribes only where its kind
 * may, never a retained message, and a proplet speaks only about itself. A refused publish closes the connection
 * (MQTT 3.1.1 has no negative ack). A proplet receives a manager's message only when it is for it (forward below).
 * A refused QoS 1/2 publish that comes again after the reconnect (same topic and message id: the client was never
 * acked; mqtt.js does not set DUP) is acked and dropped, unsaid: the client sent it again and again, each time
 * logged (19 warnings and counting). It would be refused anyway: nothing is let through that was not.
 */
export function guard(aedes: Aedes, auth: BrokerAuth, maxPayloadBytes: number) {
  const peers = new WeakMap<Client, Peer>();
  const connected = new Map<string, Set<Client>>();
  aedes.on("clientDisconnect", (client) => {
    const peer = peers.get(client);
    if (peer) connected.get(peer.id)?.delete(client);
  });
  const acl = aclFor(auth.channel);
  const self = selfTopics(auth.channel);
  const addressed = addressedTopics(auth.channel);
  const t = topics(auth.channel);
  const refuse = (why: string, returnCode: number) => Object.assign(new Error(why), { returnCode });
  /** Refused QoS 1/2 publishes by peer and message id, oldest first; bounded. */
  const refused = new Set<string>();
  const REFUSED_KEPT = 1024;
  const takeovers = new OncePer(60_000);
  /** Refusals said per sender and kind: one line in 10 s at most. */
  const folds = new Folded(10_000);
  aedes.authenticate = (client, username, password, done) => {
    const id = username ?? "";
    const kind = id && password ? auth.authenticate(id, password.toString("utf8")) : undefined;
    if (!kind) {
      // Before any authentication: folded per address, the names cut (8 KB usernames were 179 MB of log in 10 s).
      const more = folds.say(`connect ${addressOf(client).replace(/:\d+$/, "")}`, Date.now());
      if (more !== undefined)
        log.warn(
          `mqtt: refused ${id ? `entity ${cut(id)}` : "an anonymous client"} (client id ${cut(client.id)}) from ${addressOf(client)}: not authorized${more}`,
        );
      return done(refuse("not authorized", 5), false);
    }
    const peer = { id, kind };
    const wrongId = clientIdRefusal(peer, client.id, client.clean, auth.channel);
    if (wrongId) {
      const more = folds.say(`client id ${id}`, Date.now());
      if (more !== undefined) log.warn(`mqtt: refused ${kind} ${id}: ${cut(wrongId)}${more}`);
      return done(refuse(wrongId, 2), false); // 2: identifier rejected
    }
    const same = connected.get(id) ?? new Set<Client>();
    // A proplet's connections at once, besides the one its own client id takes over (MQTT's takeover of a session):
    // each held a partly received packet of up to 16 MiB while the proplet's shared read rate (limits.ts) let each
    // go on slowly; 24 of one identity held 1.1 GB.
    const others = [...same].filter((c) => c.id !== client.id).length;
    if (kind === "proplet" && others >= MAX_CONNECTIONS_PER_PROPLET) {
      const more = folds.say(`connections ${id}`, Date.now());
      if (more !== undefined)
        log.warn(
          `mqtt: refused proplet ${id} (client id ${cut(client.id)}): ${others} connections of it are open already${more}`,
        );
      return done(refuse(`at most ${MAX_CONNECTIONS_PER_PROPLET} connections per proplet`, 2), false);
    }
    // Its own client id again: MQTT's takeover, the old connection is closed. Two processes started with one
    // identity (a proplet's env copied to a second machine) take each other's place for ever, every second or two,
    // and each runs tasks meant for the other: said, once a minute per identity.
    const before = [...same].find((c) => c.id === client.id);
    if (before && kind === "proplet" && takeovers.due(id, Date.now()))
      log.warn(
        `mqtt: proplet ${id}: a connection from ${addressOf(client)} takes its session over from ${addressOf(before)}; if two proplets run with this identity, each cuts the other off (give each its own: propeller proplets add)`,
      );
    peers.set(client, peer);
    connected.set(id, same.add(client));
    // Counted until its connection closes, however it ends: aedes says clientDisconnect only for a client it had
    // registered, and one that failed between here and there would stay counted for good.
    (client as unknown as { conn?: { once(e: "close", f: () => void): void } }).conn?.once("close", () => {
      same.delete(client);
      if (same.size === 0 && connected.get(id) === same) connected.delete(id);
    });
    done(null, true);
  };
  aedes.authorizePublish = (client, packet, done) => {
    const peer = client ? peers.get(client) : undefined;
    if (!peer) return done(new Error("not authenticated"));
    const key = packet.qos > 0 ? `${peer.id}\0${packet.messageId}\0${packet.topic}` : undefined;
    if (key && refused.has(key)) {
      // Delivered nowhere: no client may subscribe to a `$` topic here, and wildcards never match one.
      refused.delete(key);
      packet.topic = DROPPED;
      packet.payload = Buffer.alloc(0);
      packet.retain = false;
      return done(null);
    }
    const deny = (why: string) => {
      const more = folds.say(`publish ${peer.id} ${why}`, Date.now());
      if (more !== undefined)
        log.warn(`mqtt: ${peer.kind} ${peer.id} may not publish on ${cut(packet.topic)}: ${why}${more}`);
      if (key) {
        refused.add(key);
        if (refused.size > REFUSED_KEPT) refused.delete(refused.values().next().value!);
      }
      done(new Error(why));
    };
    if (packet.retain) return deny("retained messages are refused");
    if ((packet.payload as Buffer).length > maxPayloadBytes) return deny(`payload over ${maxPayloadBytes} bytes`);
    const fl = mayPublishFlUpdate(peer, packet.topic);
    if (fl === false) return deny("an FL update topic names the proplet that sends it");
    if (!fl && !acl[peer.kind].publish.has(packet.topic)) return deny("topic not allowed");
    if (peer.kind === "proplet" && (self.has(packet.topic) || packet.topic === t.registryRequest)) {
      let checked: ReturnType<typeof checkSelf>;
      try {
        checked =
          packet.topic === t.registryRequest
            ? stampRequester(peer, packet.payload as Buffer)
            : checkSelf(peer, packet.topic, packet.payload as Buffer, t.results);
      } catch (e) {
        // Nothing a payload makes the check throw may escape into aedes: it would end serve's process.
        return deny(`payload could not be read: ${e instanceof Error ? e.message : e}`);
      }
      if (typeof checked === "string") return deny(checked);
      packet.payload = checked.payload;
      rememberParsed(checked.payload, checked.msg);
    }
    done(null);
  };
  aedes.authorizeSubscribe = (client, sub, done) => {
    const peer = client ? peers.get(client) : undefined;
    if (!peer || !acl[peer.kind].subscribe.has(sub.topic)) {
      const more = folds.say(`subscribe ${peer?.id ?? ""}`, Date.now());
      if (more !== undefined)
        log.warn(
          `mqtt: ${peer ? `${peer.kind} ${peer.id}` : "an unknown client"} may not subscribe to ${cut(sub.topic)}${more}`,
        );
      return done(null, null); // a failure code (0x80) in the SUBACK
    }
    done(null, sub);
  };
  // Per recipient: a proplet gets a manager-to-proplet message only when it names no proplet (a broadcast) or names
  // this one. The same packet comes here once per subscriber: its JSON is parsed for the first and kept
  // (parsed.ts). A module chunk is megabytes of base64 with no quote inside: the search for the key skips parsing
  // those that name nobody.
  aedes.authorizeForward = (client, packet) => {
    if (!addressed.has(packet.topic)) return packet;
    const peer = peers.get(client);
    if (peer?.kind !== "proplet") return packet;
    const to = addresseeOf(parsedPayload(packet));
    return to === undefined || to === peer.id ? packet : null;
  };
  return {
    peerOf: (client: Client) => peers.get(client),
    disconnect: (id: string) => {
      for (const c of connected.get(id) ?? []) c.close();
      connected.delete(id);
    },
  };
}

const PROPLET_ID_KEY = Buffer.from('"proplet_id"');

function parsedPayload(packet: AedesPublishPacket): unknown {
  const payload = packet.payload as Buffer;
  const known = parsedOf(payload);
  if (known !== undefined) return known;
  let msg: unknown = null;
  if (payload.indexOf(PROPLET_ID_KEY) >= 0) {
    try {
      msg = JSON.parse(payload.toString("utf8"));
    } catch {
      msg = null;
    }
  }
  rememberParsed(payload, msg);
  return msg;
}

/** Where a client connects from, for the log. */
function addressOf(client: Client): string {
  const conn = (client as unknown as { conn?: { remoteAddress?: string; remotePort?: number } }).conn;
  return conn?.remoteAddress ? `${conn.remoteAddress}:${conn.remotePort ?? "?"}` : "an unknown address";
}

/** A name from the wire, cut for the log. */
function cut(s: string): string {
  return s.length > 128 ? `${s.slice(0, 128)}…(${s.length} characters)` : s;
}
