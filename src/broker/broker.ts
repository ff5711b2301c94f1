import { createServer, type Server } from "node:net";
import { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import { Aedes, type Client } from "aedes";
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { aclFor, checkSelf, mayPublishFlUpdate, type Peer, selfTopics } from "../core/acl.ts";
import type { EntityKind } from "../core/identity.ts";
import { type Channel, topics } from "../core/topics.ts";
import { log } from "../log.ts";
import "./bl-fast.ts";
import "./packet-numbers.ts";
import { coalesced } from "./coalesce.ts";
import { rememberParsed } from "./parsed.ts";

// The embedded MQTT broker: aedes on node:net for TCP (Bun.listen does not buffer partial writes), and
// MQTT-over-WebSocket through Bun.serve's own websocket handlers feeding a small Duplex, because Bun's `ws` shim
// lacks what aedes-over-ws needs (docs/ARCHITECTURE.md, "Measured traps").

export interface WsData {
  stream?: Duplex;
}

export interface EmbeddedBroker {
  aedes: Aedes;
  port: number;
  websocket: WebSocketHandler<WsData>;
  /** Closes the connections of this identity (after a revocation). */
  disconnect(id: string): void;
  /** The TCP (or TLS) listener is open, for `/readyz`. */
  listening(): boolean;
  /** A renewed certificate (SIGHUP) for connections made from now on; open ones keep theirs. */
  setTls(tls: BrokerTls): void;
  close(): Promise<void>;
}

/** Authentication for the broker: unset, anyone may connect and publish anything (`serve --no-auth`). */
export interface BrokerAuth {
  /** The kind of the entity these credentials name, if they are valid. */
  authenticate(id: string, key: string): EntityKind | undefined;
  channel: Channel;
}

/** MQTT over TLS instead of plain TCP: PEM certificate chain and key; with `clientCa`, clients must show one. */
export interface BrokerTls {
  cert: string;
  key: string;
  clientCa?: string;
}

export async function startBroker(
  host: string,
  port: number,
  auth?: BrokerAuth,
  tls?: BrokerTls,
): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ id: "propeller" });
  const guarded = auth ? guard(aedes, auth) : undefined;
  aedes.on("clientError", (client, err) => log.debug(`mqtt client ${client?.id ?? "?"}: ${err.message}`));
  aedes.on("connectionError", (_client, err) => log.debug(`mqtt connection error: ${err.message}`));
  const tcp: Server = tls
    ? createTlsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        },
        (socket) => aedes.handle(coalesced(socket)),
      )
    : createServer((socket) => aedes.handle(coalesced(socket)));
  if (tls) tcp.on("tlsClientError", (e) => log.debug(`mqtt TLS handshake refused: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  const addr = tcp.address();
  const boundPort = typeof addr === "object" && addr ? addr.port : port;

  const websocket: WebSocketHandler<WsData> = {
    open(ws: ServerWebSocket<WsData>) {
      const stream = new Duplex({
        read() {},
        write(chunk: Buffer, _enc, cb) {
          ws.send(chunk);
          cb();
        },
        final(cb) {
          ws.close();
          cb();
        },
      });
      stream.on("error", () => ws.close());
      ws.data.stream = stream;
      aedes.handle(stream);
    },
    message(ws, msg) {
      ws.data.stream?.push(typeof msg === "string" ? Buffer.from(msg) : msg);
    },
    close(ws) {
      ws.data.stream?.push(null);
      ws.data.stream?.destroy();
    },
  };

  return {
    aedes,
    port: boundPort,
    websocket,
    disconnect: (id) => guarded?.disconnect(id),
    listening: () => tcp.listening,
    setTls: (t) => {
      if (!("setSecureContext" in tcp)) throw new Error("the MQTT listener is plain TCP: start serve with TLS");
      (tcp as import("node:tls").Server).setSecureContext({
        cert: t.cert,
        key: t.key,
        ...(t.clientCa ? { ca: t.clientCa } : {}),
      });
    },
    close: async () => {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

/** No message of the protocol is larger: module chunks are at most 8 MiB of bytes, base64 in JSON. */
const MAX_PAYLOAD_BYTES = 16 << 20;

/**
 * Installs authentication and the ACL (core/acl.ts) on the broker: CONNECT needs username = entity id and
 * password = its API key; a peer publishes and subscribes only where its kind may, never a retained message, and
 * a proplet speaks only about itself. A refused publish closes the connection (MQTT 3.1.1 has no negative ack).
 */

function guard(aedes: Aedes, auth: BrokerAuth): { disconnect(id: string): void } {
  const peers = new WeakMap<Client, Peer>();
  const connected = new Map<string, Set<Client>>();
  aedes.on("clientDisconnect", (client) => {
    const peer = peers.get(client);
    if (peer) connected.get(peer.id)?.delete(client);
  });
  const acl = aclFor(auth.channel);
  const self = selfTopics(auth.channel);
  const results = topics(auth.channel).results;
  const refuse = (why: string) => Object.assign(new Error(why), { returnCode: 5 });
  aedes.authenticate = (client, username, password, done) => {
    const id = username ?? "";
    const kind = id && password ? auth.authenticate(id, password.toString("utf8")) : undefined;
    if (!kind) {
      log.warn(`mqtt: refused ${id ? `entity ${id}` : "an anonymous client"} (client id ${client.id}): not authorized`);
      return done(refuse("not authorized"), false);
    }
    peers.set(client, { id, kind });
    const same = connected.get(id) ?? new Set<Client>();
    connected.set(id, same.add(client));
    done(null, true);
  };
  aedes.authorizePublish = (client, packet, done) => {
    const peer = client ? peers.get(client) : undefined;
    if (!peer) return done(new Error("not authenticated"));
    const deny = (why: string) => {
      log.warn(`mqtt: ${peer.kind} ${peer.id} may not publish on ${packet.topic}: ${why}`);
      done(new Error(why));
    };
    if (packet.retain) return deny("retained messages are refused");
    if ((packet.payload as Buffer).length > MAX_PAYLOAD_BYTES)
      return deny(`payload over ${MAX_PAYLOAD_BYTES >> 20} MiB`);
    const fl = mayPublishFlUpdate(peer, packet.topic);
    if (fl === false) return deny("an FL update topic names the proplet that sends it");
    if (!fl && !acl[peer.kind].publish.has(packet.topic)) return deny("topic not allowed");
    if (peer.kind === "proplet" && self.has(packet.topic)) {
      const checked = checkSelf(peer, packet.topic, packet.payload as Buffer, results);
      if (typeof checked === "string") return deny(checked);
      packet.payload = checked.payload;
      rememberParsed(checked.payload, checked.msg);
    }
    done(null);
  };
  aedes.authorizeSubscribe = (client, sub, done) => {
    const peer = client ? peers.get(client) : undefined;
    if (!peer || !acl[peer.kind].subscribe.has(sub.topic)) {
      log.warn(`mqtt: ${peer ? `${peer.kind} ${peer.id}` : "an unknown client"} may not subscribe to ${sub.topic}`);
      return done(null, null); // a failure code (0x80) in the SUBACK
    }
    done(null, sub);
  };
  return {
    disconnect: (id) => {
      for (const c of connected.get(id) ?? []) c.close();
      connected.delete(id);
    },
  };
}
