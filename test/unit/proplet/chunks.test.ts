import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { ChunkAssembler } from "../../../src/proplet/chunks.ts";

const data = new TextEncoder().encode("0123456789abcdef");
const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
const chunk = (i: number, total = 4, extra: Record<string, unknown> = {}) => ({
  app_name: "r.example/m:v1",
  chunk_idx: i,
  total_chunks: total,
  data: Buffer.from(data.subarray(i * 4, i * 4 + 4)).toString("base64"),
  digest,
  ...extra,
});

test("chunks out of order, duplicates and a wrong total; two waiters share one assembly", async () => {
  const requests: unknown[] = [];
  const warnings: string[] = [];
  const a = new ChunkAssembler(
    (app, chunks) => requests.push({ app, chunks }),
    (m) => warnings.push(m),
  );
  const w1 = a.wait("r.example/m:v1", 5000);
  const w2 = a.wait("r.example/m:v1", 5000);
  expect(requests).toEqual([{ app: "r.example/m:v1", chunks: undefined }]); // one request for both
  a.onChunk(chunk(3));
  a.onChunk(chunk(1));
  a.onChunk(chunk(1)); // duplicate
  a.onChunk(chunk(2, 5)); // disagrees on the total: dropped
  a.onChunk(chunk(0));
  a.onChunk(chunk(2));
  const [b1, b2] = await Promise.all([w1, w2]);
  expect(new TextDecoder().decode(b1)).toBe("0123456789abcdef");
  expect(b2).toEqual(b1);
  expect(warnings.some((w) => w.includes("earlier ones said 4"))).toBe(true);
  a.close();
});

test("a digest mismatch fails the waiters", async () => {
  const a = new ChunkAssembler(
    () => {},
    () => {},
  );
  const w = a.wait("r.example/m:v1", 5000);
  for (let i = 0; i < 4; i++) a.onChunk(chunk(i, 4, { digest: `sha256:${"0".repeat(64)}` }));
  await expect(w).rejects.toThrow("do not match digest");
  a.close();
});

test("a proxy error fails the waiters at once", async () => {
  const a = new ChunkAssembler(
    () => {},
    () => {},
  );
  const w = a.wait("r.example/m:v1", 5000);
  a.onError({ app_name: "r.example/m:v1", error: "fetching r.example/m:v1: HTTP 404" });
  await expect(w).rejects.toThrow("HTTP 404");
  a.close();
});
