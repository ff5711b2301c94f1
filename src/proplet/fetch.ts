import type { StartMsg } from "../core/messages.ts";
import { base64Bytes, moduleTooLarge } from "../core/module-size.ts";
import { fetchFollowing } from "../proxy/http.ts";

// Where a task's module comes from: inline base64 `file`, an http(s) `image_url`, or an OCI reference, which
// travels as MQTT chunks from the proxy (`oci`). Each is refused past the proplet's module cap before it is held
// whole (the chunk assembler counts the chunks it keeps).

const HTTP_TIMEOUT_MS = 30_000;

/** The proplet's module cap in MiB, and how it is set (named in the refusal). */
export interface ModuleCap {
  mb: number;
  setting: string;
}

export async function fetchModule(
  msg: StartMsg,
  oci: (ref: string) => Promise<Uint8Array>,
  cap: ModuleCap,
): Promise<Uint8Array> {
  if (msg.file) {
    const big = moduleTooLarge(base64Bytes(msg.file), cap.mb, cap.setting);
    if (big) throw new Error(big);
    const bytes = Buffer.from(msg.file, "base64");
    if (bytes.length === 0) throw new Error("file is empty or not base64");
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  const url = msg.image_url;
  if (!url) throw new Error("either file or image_url must be provided");
  return /^https?:\/\//i.test(url) ? fetchHttp(url, cap) : oci(url);
}

async function fetchHttp(url: string, cap: ModuleCap): Promise<Uint8Array> {
  // Redirects are followed as the OCI proxy's are (proxy/http.ts): not into this machine's network from outside it,
  // not from https to http. serve's local proplet fetches from the gateway itself.
  const res = await fetchFollowing(url, { headers: new Headers() }, { timeoutMs: HTTP_TIMEOUT_MS });
  if (!res.ok) throw new Error(`HTTP ${res.status} fetching wasm from ${url}`);
  const type = res.headers.get("content-type") ?? "";
  if (type && !/application\/(wasm|octet-stream)/.test(type))
    throw new Error(`unexpected content type ${type} fetching wasm from ${url}`);
  const tooLarge = (n: number) => moduleTooLarge(n, cap.mb, cap.setting);
  const declared = tooLarge(Number(res.headers.get("content-length") ?? 0));
  if (declared) throw new Error(`module at ${url}: ${declared}`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body!) {
    size += chunk.length;
    const big = tooLarge(size);
    if (big) throw new Error(`module at ${url}: ${big}`); // leaving the loop cancels the download
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
