import type { Serve, Server } from "bun";
import type { BrokerTls } from "../broker/broker.ts";

// serve's HTTP listener, whose certificate a SIGHUP renews. Bun.serve cannot change its certificate in place
// (`server.reload` ignores `tls`), so a renewal stops the listener from accepting and opens a new one on the same
// port with the same handlers; the old one finishes its open connections (event streams, WebSockets). Measured
// with 8 clients hammering /livez through 20 renewals: 3 to 5 requests per renewal were reset or
// refused, and an open event stream went on.

export interface Listener {
  readonly port: number;
  reloadTls(tls: BrokerTls): void;
  stop(): void;
}

export function listen<T>(
  options: (tls: BrokerTls | undefined, port: number) => Serve.Options<T>,
  tls: BrokerTls | undefined,
  port: number,
): Listener {
  let server: Server<T> = Bun.serve<T>(options(tls, port));
  /** Listeners a renewal replaced, still finishing their connections until serve stops. */
  const retired: Server<T>[] = [];
  let current = tls;
  return {
    get port() {
      return server.port!;
    },
    reloadTls(next) {
      const old = server;
      old.stop(false);
      try {
        server = Bun.serve<T>(options(next, old.port!));
      } catch (e) {
        server = Bun.serve<T>(options(current, old.port!));
        throw e;
      }
      current = next;
      retired.push(old);
    },
    stop() {
      server.stop(true);
      for (const r of retired.splice(0)) r.stop(true);
    },
  };
}
