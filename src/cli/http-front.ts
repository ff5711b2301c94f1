import type { Server } from "bun";
import type { Hono } from "hono";
import consoleIndex from "../../web/index.html";
import type { BrokerTls, EmbeddedBroker, WsData } from "../broker/broker.ts";
import { hostAllowed, hostRefusal, type OriginPolicy, originAllowed, originPolicy } from "../core/origins.ts";
import { log } from "../log.ts";
import { type ApiLimits, maxRequestBytes } from "../manager/api/limits.ts";
import { ConsoleAssets } from "./console-assets.ts";
import { type Listener, listen } from "./listener.ts";
import type { ServeOptions } from "./site-options.ts";

// serve's HTTP front: one port for the REST API (hono), the console's assets and MQTT over WebSocket (/mqtt), and
// the checks a browser's request meets before any of them (Host under --no-auth, Origin on /mqtt). Apart from the
// composition (site.ts), which hands it the app and the broker, so that what the port answers changes here only.

type FrontOptions = Pick<ServeOptions, "host" | "httpPort" | "auth" | "tls" | "allowedOrigins" | "advertiseUrl">;

/**
 * serve's own origins and the configured ones. They need serve's port, known once it listens: `port` is asked at
 * the first request, which comes after that.
 */
export function frontOrigins(o: FrontOptions, port: () => number): () => OriginPolicy {
  let policy: OriginPolicy | undefined;
  return () =>
    (policy ??= originPolicy({
      tls: Boolean(o.tls),
      host: o.host,
      port: port(),
      allowedOrigins: o.allowedOrigins ?? [],
      advertiseUrl: o.advertiseUrl,
    }));
}

export interface HttpFront {
  server: Listener;
  /** Stops listening and lets go of the console's compressed assets. */
  stop(): void;
}

/** Listens on serve's HTTP port (HTTPS with --tls-cert) with the REST app, the console and, with a broker, /mqtt. */
export function startHttpFront(
  o: FrontOptions,
  limits: ApiLimits,
  origins: () => OriginPolicy,
  broker: EmbeddedBroker | undefined,
  app: Hono,
): HttpFront {
  const consoleAssets = new ConsoleAssets(consoleIndex);
  const serverOptions = (tls: BrokerTls | undefined, port: number) => ({
    hostname: o.host,
    port,
    maxRequestBodySize: maxRequestBytes(limits),
    // Bundled and minified once, not a dev server with hot reload.
    development: false,
    // Bun's production mode sets SO_REUSEPORT: a second serve on this port would bind too and the kernel would
    // split clients between two sites. One port, one site.
    reusePort: false,
    ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    fetch(req: Request, srv: Server<WsData>) {
      // Without authentication, a page whose name DNS rebinding pointed at loopback would be "same origin" with
      // serve: only the names serve is configured under are answered.
      if (!o.auth && !hostAllowed(origins(), req.headers.get("host"))) {
        return Response.json({ error: hostRefusal(req.headers.get("host")) }, { status: 421 });
      }
      // The address, for the count of failed sign-ins (api/session.ts, api/join.ts), asked only by those routes.
      const env = {
        get ip() {
          return srv.requestIP(req)?.address;
        },
      };
      // Only a GET or HEAD may be the console's, and only an address with "mqtt" in it /mqtt: a task's POSTs pass
      // straight to the API, without parsing their address twice (hono takes the path from it itself).
      if (req.method !== "GET" && req.method !== "HEAD" && !req.url.includes("mqtt")) return app.fetch(req, env);
      const url = new URL(req.url);
      if (url.pathname === "/mqtt" && broker) {
        // A web page may open a WebSocket to any address, cookies or not: only serve's own origins (from its
        // configuration, never from the request's Host, which such a page sets too) or configured ones may speak
        // MQTT from a browser. Clients outside a browser send no Origin.
        const origin = req.headers.get("origin");
        if (origin && !originAllowed(origins(), origin)) {
          log.warn(`refused a WebSocket upgrade from origin ${origin}`);
          return new Response(`origin ${origin} may not open an MQTT WebSocket`, { status: 403 });
        }
        // Browsers and mqtt.js ask for the "mqtt" subprotocol and refuse a reply without it.
        const proto = req.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
        if (srv.upgrade(req, { data: {}, headers: proto ? { "Sec-WebSocket-Protocol": proto } : {} })) return undefined;
        return new Response("expected a WebSocket upgrade", { status: 400 });
      }
      // The console (web/), bundled by Bun from its HTML and embedded in the compiled executable, compressed.
      if (consoleAssets.claims(req, url.pathname)) {
        return consoleAssets.respond(req, url.pathname).then((r) => r ?? app.fetch(req, env));
      }
      return app.fetch(req, env);
    },
    websocket: broker?.websocket ?? { message() {} },
  });
  const server = listen(serverOptions, o.tls, o.httpPort);
  return {
    server,
    stop: () => {
      server.stop();
      consoleAssets.close();
    },
  };
}
