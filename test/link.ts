import { createConnection, createServer, type Server, type Socket } from "node:net";

// A network link a test can cut: a TCP proxy between a proplet and its broker. `cut()` black-holes it as a dropped
// edge link does — nothing passes either way, nothing is closed, no error is seen — by pausing both sockets, so
// bytes already sent wait in the kernel as TCP would retransmit them; a connection opened meanwhile is held, not
// refused. `restore()` lets everything through again. An end one side closed while the link was cut reaches the
// other side only after it is restored (a reset after the outage, as a real peer answers a stale connection), so
// keep-alive expiry, half-open connections and reconnect back-off run as on a real link.

interface Pair {
  client: Socket;
  upstream?: Socket;
  /** One side closed while cut: the other is ended when the link comes back. */
  closed: boolean;
}

export class Link {
  private server: Server;
  private pairs = new Set<Pair>();
  private isCut = false;
  port = 0;

  constructor(
    private target: { host: string; port: number },
    private listenPort = 0,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(this.listenPort, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  get cutNow(): boolean {
    return this.isCut;
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, closed: false };
    this.pairs.add(pair);
    client.on("error", () => {});
    if (this.isCut) client.pause();
    else this.connect(pair);
    client.on("close", () => this.closed(pair, "client"));
  }

  private connect(pair: Pair): void {
    const up = createConnection(this.target.port, this.target.host);
    pair.upstream = up;
    up.on("error", () => {});
    pair.client.on("data", (d) => up.write(d));
    up.on("data", (d) => pair.client.write(d));
    up.on("close", () => this.closed(pair, "upstream"));
    pair.client.resume();
  }

  private closed(pair: Pair, _side: "client" | "upstream"): void {
    if (this.isCut) {
      pair.closed = true; // the other side hears of it only when the link is back
      return;
    }
    this.end(pair);
  }

  private end(pair: Pair): void {
    this.pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  }

  /** Black-holes the link: from now nothing passes, until `restore()`. */
  cut(): void {
    this.isCut = true;
    for (const p of this.pairs) {
      p.client.pause();
      p.upstream?.pause();
    }
  }

  restore(): void {
    this.isCut = false;
    for (const p of [...this.pairs]) {
      if (p.closed) this.end(p);
      else if (!p.upstream) this.connect(p);
      else {
        p.client.resume();
        p.upstream.resume();
      }
    }
  }

  async close(): Promise<void> {
    for (const p of [...this.pairs]) this.end(p);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
