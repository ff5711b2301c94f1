import type { Context } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";

/**
 * A Server-Sent Events response fed by a subscription: items queue as they come and are written in order; a
 * comment every 5 s keeps an idle connection (and Bun's idle timeout) alive. `write` returns false to end the
 * stream. `subscribe` is called at once, in the caller's tick, so nothing falls between a read and the follow.
 */
export function sseFeed<T>(
  c: Context,
  first: T[],
  subscribe: (push: (item: T) => void) => () => void,
  write: (stream: SSEStreamingApi, item: T) => Promise<boolean>,
): Response {
  const queue = [...first];
  let wake: (() => void) | undefined;
  const unsubscribe = subscribe((item) => {
    queue.push(item);
    wake?.();
  });
  return streamSSE(c, async (stream) => {
    let open = true;
    stream.onAbort(() => {
      open = false;
      wake?.();
    });
    try {
      await stream.write(": connected\n\n");
      while (open) {
        while (queue.length) if (!(await write(stream, queue.shift()!))) return;
        const idle = await new Promise<boolean>((resolve) => {
          wake = () => resolve(false);
          setTimeout(() => resolve(true), 5000);
        });
        wake = undefined;
        if (idle && open) await stream.write(": keep-alive\n\n");
      }
    } finally {
      unsubscribe();
    }
  });
}
