// A hostile server's body that never ends, for the tests that check a reader stops: `piece` again and again, the
// bytes handed out counted in `produced` under `path`.

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
