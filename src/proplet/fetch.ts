import type { StartMsg } from "../core/messages.ts";

// Where a task's module comes from: inline base64 `file`, an http(s) `image_url`, or an OCI reference, which
// travels as MQTT chunks from the proxy (`oci`).

export const MAX_MODULE_BYTES = 100 * 1024 * 1024;
const HTTP_TIMEOUT_MS = 30_000;

export async function fetchModule(msg: StartMsg, oci: (ref: string) => Promise<Uint8Array>): Promise<Uint8Array> {
  if (msg.file) {
    const bytes = Buffer.from(msg.file, "base64");
    if (bytes.length === 0) throw new Error("file is empty or not base64");
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  const url = msg.image_url;
  if (!url) throw new Error("either file or image_url must be provided");
  return /^https?:\/\//i.test(url) ? fetchHttp(url) : oci(url);
}

async function fetchHttp(url: string): Promise<Uint8Array> {
  const res = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`HTTP ${res.status} fetching wasm from ${url}`);
  const type = res.headers.get("content-type") ?? "";
  if (type && !/application\/(wasm|octet-stream)/.test(type))
    throw new Error(`unexpected content type ${type} fetching wasm from ${url}`);
  const declared = Number(res.headers.get("content-length") ?? 0);
  if (declared > MAX_MODULE_BYTES)
    throw new Error(`module at ${url} exceeds the size limit of ${MAX_MODULE_BYTES >> 20} MiB`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body!) {
    size += chunk.length;
    if (size > MAX_MODULE_BYTES)
      throw new Error(`module at ${url} exceeds the size limit of ${MAX_MODULE_BYTES >> 20} MiB`);
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
