// A hostile server's body that never ends, for the tests that check a reader stops: `piece` again and again, the
// bytes handed out counted in `produced` under `path`.

import { readFileSync } from "node:fs";

export function endless(
  produced: Map<string, number>,
  path: string,
  piece: Uint8Array,
  contentType = "application/octet-stream",
): Response {
  produced.set(path, 0);
  return new Response(
    new ReadableStream({
      pull(c) {
        produced.set(path, (produced.get(path) ?? 0) + piece.length);
        c.enqueue(piece);
      },
    }),
    { headers: { "content-type": contentType } },
  );
}

/**
 * What the kernel may hold between an endless body's writer and its reader on loopback: the largest send buffer
 * plus the largest receive buffer autotuning can grow to (/proc/sys/net/ipv4/tcp_{w,r}mem, third figure; 4 MiB
 * and 32 MiB on the 2-core Debian machine). Bytes a registry produced beyond a reader's bound up to this much may
 * sit in those buffers, never read by serve; more than this means serve read on.
 */
export function socketSlackBytes(): number {
  const max = (name: string, fallback: number) => {
    try {
      const n = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[2]);
      return Number.isFinite(n) && n > 0 ? n : fallback;
    } catch {
      return fallback;
    }
  };
  return max("tcp_wmem", 4 << 20) + max("tcp_rmem", 6 << 20);
}
