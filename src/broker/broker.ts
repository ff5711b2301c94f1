import { createServer, type Server } from "node:net";
import { Duplex } from "node:stream";
import { Aedes } from "aedes";
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { log } from "../log.ts";

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
  close(): Promise<void>;
}

export async function startBroker(host: string, port: number): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ id: "propeller" });
  aedes.on("clientError", (client, err) => log.debug(`mqtt client ${client?.id ?? "?"}: ${err.message}`));
  aedes.on("connectionError", (_client, err) => log.debug(`mqtt connection error: ${err.message}`));
  const tcp: Server = createServer(aedes.handle);
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
    close: async () => {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
