import type { Context } from "hono";
import { log } from "../../log.ts";
import { ownerOf } from "./auth.ts";
import type { Held, Streams } from "./streams.ts";

/** What one item becomes on the wire; `last` ends the stream after it. */
export interface SseMessage {
  event: string;
  data: string;
  last?: boolean;
}

/** An item encoded once for the wire. */
export interface Frame {
  bytes: Uint8Array;
  last?: boolean;
}

const KEEP_ALIVE_MS = 5000;
/** A stream told to end is cut off if its client has not read up to the end this long after. */
const END_GRACE_MS = 2000;
/** A stream that ended by itself (a finished task's log) has this long to be read to its end: a big backlog on a
 * slow link is read whole, and one never read gives its place back. */
const READ_TO_END_MS = 60_000;

const encoder = new TextEncoder();
const frame = (m: { event: string; data: string }) =>
  `event: ${m.event}\ndata: ${m.data.replace(/\n/g, "\ndata: ")}\n\n`;

export const frameOf = (m: SseMessage): Frame => ({
  bytes: encoder.encode(frame(m)),
  ...(m.last ? { last: true } : {}),
});

/**
 * A route's formatter, encoding each item once for all its subscribers: fifty streams share one copy of an event's
 * bytes (their queues hold references), instead of fifty serializations of it.
 */
export function frames<T>(format: (item: T) => SseMessage): (item: T) => Frame {
  const cache = new WeakMap<object, Frame>();
  return (item) => {
    const key = typeof item === "object" && item !== null ? item : undefined;
    const hit = key && cache.get(key);
    if (hit) return hit;
    const f = frameOf(format(item));
    if (key) cache.set(key, f);
    return f;
  };
}

/**
 * A Server-Sent Events response fed by a subscription. Items are encoded as they come and queued for this
 * subscriber; Bun pulls from the stream only as fast as the socket takes bytes (it applies TCP backpressure to a
 * pull-based body), so a client that stops reading leaves its items here, and past `queueBytes` it is dropped: the
 * connection is cut and its queue freed, instead of serve's memory growing with every event. A comment every 5 s
 * keeps an idle connection (and Bun's idle timeout) alive. `subscribe` is called at once, in the caller's tick, so
 * nothing falls between a read and the follow. The stream counts against `streams`' caps and ends, with a `closed`
 * event saying why, when its token is revoked or its session ends.
 */
export function sseFeed<T>(
  c: Context,
  streams: Streams,
  first: T[],
  subscribe: (push: (item: T) => void) => () => void,
  format: (item: T) => Frame,
): Response {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ending = false;
  let done = false;
  let errored = false;
  let cancelled = false;
  let wake: (() => void) | undefined;
  let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
  let unsubscribe = () => {};
  let limit = streams.limits.queueBytes;

  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(cutting);
    unsubscribe();
    streams.release(held);
    wake?.();
  };
  const cut = (why: string) => {
    if (done) return;
    queue.length = 0;
    queued = 0;
    errored = true;
    finish();
    log.warn(`${c.req.path}: dropped a stream: ${why}`);
    try {
      ctl?.error(new Error(why));
    } catch {}
  };
  const push = (text: string | Uint8Array) => {
    if (done || ending) return;
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    queue.push(bytes);
    queued += bytes.length;
    if (queued > limit) cut(`its client is not reading (${queued} bytes queued)`);
    else wake?.();
  };
  // An ending stream whose client does not read to its end is cut after the grace: its place is given back either way
  // (a finished task's log stream, answered to a HEAD or never read, held its place for good, revoked or not).
  let cutting: Timer | undefined;
  const cutLater = (why: string, ms: number) => {
    if (cutting) return;
    cutting = setTimeout(() => cut(`${why}, its client did not read to the end`), ms);
    cutting.unref?.();
  };
  const add = (item: T) => {
    const f = format(item);
    push(f.bytes);
    if (f.last) {
      ending = true;
      cutLater("it ended", READ_TO_END_MS);
    }
  };
  const held: Held = {
    owner: ownerOf(c),
    end: (reason) => {
      if (done) return;
      if (!ending) {
        push(frame({ event: "closed", data: JSON.stringify({ reason }) }));
        ending = true;
        wake?.();
      }
      // Sooner than a natural end's: a revoked token's stream must not outlive it by a minute.
      if (cutting) clearTimeout(cutting);
      cutting = undefined;
      cutLater(`told to end (${reason})`, END_GRACE_MS);
    },
  };
  // A HEAD is answered with the headers alone: hono runs the GET handler for it and drops the body unread, and the
  // stream held its place (one of the token's and the site's) for good.
  if (c.req.method === "HEAD") return new Response(null, { headers: SSE_HEADERS });
  const refused = streams.admit(held);
  if (refused) return c.json({ error: refused.error }, refused.status);

  push(": connected\n\n");
  for (const item of first) add(item);
  // What was kept before the follow (a task's output so far) is the client's own backlog: the bound is on top.
  limit += queued;
  if (!ending) unsubscribe = subscribe(add);

  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        ctl = controller;
      },
      async pull(controller) {
        while (!queue.length && !ending && !done) {
          const idle = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(true), KEEP_ALIVE_MS);
            wake = () => {
              clearTimeout(timer);
              resolve(false);
            };
          });
          wake = undefined;
          if (idle && !queue.length && !done) push(": keep-alive\n\n");
        }
        if (errored || cancelled) return;
        if (queue.length) {
          // Each frame as it is (shared with the other subscribers), not a copy of them joined.
          for (const b of queue) controller.enqueue(b);
          queue.length = 0;
          queued = 0;
          return;
        }
        finish();
        controller.close();
      },
      cancel() {
        cancelled = true;
        finish();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { headers: SSE_HEADERS });
}

const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" };
