import type { Socket } from "node:net";

// aedes writes each MQTT packet as several small writes (header, length, topic, payload), and Bun's node:net sends
// each on its own: measured, the socket writes were the largest single cost of the broker under load (18 % of its
// CPU at 100,000 messages/s). A connection handed to aedes through this gathers what is written in one turn of the
// event loop into one socket write.
//
// The socket itself is handed over, with its write, end and destroy replaced, rather than wrapped in a stream of
// our own: a wrapper put every incoming chunk through a second stream's buffering and events, which cost the
// broker more than 4 % of its CPU with 10,000 proplets heartbeating (scripts/bench/fleet.ts --profile).
// Backpressure holds: while the socket is full, write says so and its callbacks wait for the socket's own drain,
// which is what aedes waits for too.

type WriteCb = (err?: Error | null) => void;

export function coalesced<S extends Socket>(socket: S): S {
  const write = socket.write.bind(socket) as (data: Buffer) => boolean;
  const end = socket.end.bind(socket);
  const destroy = socket.destroy.bind(socket);
  let pending: Buffer[] = [];
  let congested = false;
  let waiting: WriteCb[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    pending = [];
    if (socket.destroyed || !socket.writable) return;
    if (!write(data) && !congested) {
      congested = true;
      socket.once("drain", () => {
        congested = false;
        const resume = waiting;
        waiting = [];
        for (const cb of resume) cb();
      });
    }
  };
  const patched = socket as unknown as {
    write(chunk: Buffer | string, enc?: BufferEncoding | WriteCb, cb?: WriteCb): boolean;
    end(...args: unknown[]): Socket;
    destroy(err?: Error): Socket;
    cork(): void;
    uncork(): void;
  };
  patched.write = (chunk, enc, cb) => {
    const done = typeof enc === "function" ? enc : cb;
    pending.push(typeof chunk === "string" ? Buffer.from(chunk, typeof enc === "string" ? enc : "utf8") : chunk);
    if (pending.length === 1) setImmediate(flush);
    if (done) {
      if (congested) waiting.push(done);
      else queueMicrotask(() => done());
    }
    return !congested;
  };
  // Gathering is done here: the socket's own cork (mqtt-packet corks for one tick) would only delay the flush.
  patched.cork = () => {};
  patched.uncork = () => {};
  patched.end = (...args: unknown[]) => {
    flush();
    return (end as (...a: unknown[]) => Socket)(...args);
  };
  patched.destroy = (err?: Error) => {
    // What was written before (a CONNACK refusing the client, say) goes out first, as it would have unbatched.
    flush();
    return destroy(err);
  };
  return socket;
}
