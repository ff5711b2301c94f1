import { createServer, type Server, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import { Aedes } from "aedes";
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { log } from "../log.ts";
import "./bl-fast.ts";
import "./packet-numbers.ts";
import { coalesced } from "./coalesce.ts";
import { fastPublish } from "./fast-publish.ts";
import { type BrokerAuth, guard } from "./guard.ts";
import {
  type BrokerLimits,
  BURST_BYTES_PER_PROPLET,
  BYTES_PER_SECOND_PER_PROPLET,
  boundQos2,
  CONNECT_TIMEOUT_MS,
  connectionAdmission,
  DEFAULT_LIMITS,
  gated,
  MAX_INFLIGHT_QOS2,
  PACKET_OVERHEAD,
  readRate,
} from "./limits.ts";
import { cacheMatches } from "./match-cache.ts";

export type { BrokerAuth } from "./guard.ts";
export type { BrokerLimits } from "./limits.ts";

// The embedded MQTT broker: aedes on node:net for TCP (Bun.listen does not buffer partial writes), and
// MQTT-over-WebSocket through Bun.serve's own websocket handlers feeding a small Duplex, because Bun's `ws` shim
// lacks what aedes-over-ws needs (docs/ARCHITECTURE.md, "Measured traps").

export interface WsData {
  stream?: Duplex;
  /** The peer's address, once admitted (limits.ts), to give its place back on close. */
  address?: string;
  /** Open but not yet past CONNECT: counted against MAX_PENDING_WS. */
  pending?: boolean;
}

/**
 * WebSockets on /mqtt open at once whose client has not yet connected (MQTT CONNECT accepted). Bun holds a frame
 * whole before handing it over, up to a packet's size: before CONNECT each costs up to that much memory, with no
 * credentials (150 of them, each sending an unfinished 16 MiB frame, held 2.5 GB). More are closed at once; one
 * that connects gives its place back, and aedes closes one that never does within its connect timeout.
 */
export const MAX_PENDING_WS = 32;

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
  limits: BrokerLimits = DEFAULT_LIMITS,
): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({
    id: "propeller",
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxInflightInbound: MAX_INFLIGHT_QOS2,
  });
  if (!cacheMatches(aedes)) log.debug("mqtt: the broker's topic matcher is not mqemitter 7's: matches are not cached");
  const guarded = auth ? guard(aedes, auth, limits.maxPacketBytes - PACKET_OVERHEAD) : undefined;
  // QoS 2 messages awaiting PUBREL: one largest packet's worth per identity (per client id without auth).
  boundQos2(aedes, limits.maxPacketBytes, (client) => guarded?.peerOf(client)?.id);
  const admission = connectionAdmission(limits);
  // A proplet's bytes a second, over all its connections (limits.ts): managers and proxies are the site's own.
  const rate = readRate({ perSecond: BYTES_PER_SECOND_PER_PROPLET, burst: BURST_BYTES_PER_PROPLET }, (client) => {
    const peer = guarded?.peerOf(client);
    return peer?.kind === "proplet" ? `proplet ${peer.id}` : undefined;
  });
  // Every connection: admitted by its address, then its packets' declared sizes checked before aedes buffers them.
  const handle = (socket: Socket) => {
    const address = socket.remoteAddress;
    if (!admission.admit(address)) return void socket.destroy();
    socket.once("close", () => admission.release(address));
    aedes.handle(fastPublish(gated(coalesced(socket), limits.maxPacketBytes, rate)));
  };
  aedes.on("clientError", (client, err) => log.debug(`mqtt client ${client?.id ?? "?"}: ${err.message}`));
  aedes.on("connectionError", (_client, err) => log.debug(`mqtt connection error: ${err.message}`));
  const tcp: Server = tls
    ? createTlsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        },
        handle,
      )
    : createServer(handle);
  if (tls) tcp.on("tlsClientError", (e) => log.debug(`mqtt TLS handshake refused: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  const addr = tcp.address();
  const boundPort = typeof addr === "object" && addr ? addr.port : port;

  let pendingWs = 0;
  let refusedWs = 0;
  const waitingWs = new WeakMap<object, WsData>();
  aedes.on("client", (client) => {
    const d = waitingWs.get((client as unknown as { conn: object }).conn);
    if (!d?.pending) return;
    d.pending = false;
    pendingWs--;
  });
  // Said once a minute at most, with how many: a flood must not flood the log too.
  const sayRefused = setInterval(() => {
    if (refusedWs === 0) return;
    log.warn(
      `mqtt: ${refusedWs} WebSocket(s) on /mqtt closed at open: ${MAX_PENDING_WS} were open without a CONNECT yet`,
    );
    refusedWs = 0;
  }, 60_000);
  sayRefused.unref();

  const websocket: WebSocketHandler<WsData> = {
    // A frame is held whole by Bun before it is handed over: none may be larger than a packet may be.
    maxPayloadLength: limits.maxPacketBytes,
    open(ws: ServerWebSocket<WsData>) {
      if (pendingWs >= MAX_PENDING_WS) {
        refusedWs++;
        return void ws.terminate();
      }
      if (!admission.admit(ws.remoteAddress)) return void ws.terminate();
      ws.data.address = ws.remoteAddress ?? "?";
      ws.data.pending = true;
      pendingWs++;
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
      stream.on("error", () => ws.terminate());
      // aedes destroys a connection it refuses (a timeout, a packet over the limit): the socket goes at once.
      stream.on("close", () => ws.terminate());
      ws.data.stream = stream;
      const conn = fastPublish(gated(stream, limits.maxPacketBytes, rate));
      waitingWs.set(conn, ws.data);
      aedes.handle(conn);
    },
    message(ws, msg) {
      ws.data.stream?.push(typeof msg === "string" ? Buffer.from(msg) : msg);
    },
    close(ws) {
      if (ws.data.pending) pendingWs--;
      ws.data.pending = false;
      if (ws.data.address !== undefined) admission.release(ws.data.address);
      ws.data.address = undefined;
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
      clearInterval(sayRefused);
      // The listener stops taking connections now, but its close waits for the open ones: aedes closes them
      // first (closed the other way round, a connected proplet held a stop for serve's whole 5 s bound).
      const listenerClosed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await listenerClosed;
    },
  };
}
