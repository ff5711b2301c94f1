import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import type { HTMLBundle, Server } from "bun";

// The console (web/), compressed. Bun bundles an imported HTML file and serves it from `routes`, with an ETag and
// immutable caching for its hashed chunks, but uncompressed (the JS alone was 95 KB on the wire). So the bundle is
// served by a Bun server of its own on a private Unix socket, read from it once (on the first request for the
// page or an asset), compressed once with Brotli and gzip, and answered from memory by serve's own handler with
// the encoding the browser accepts: the first load is about a third of what it was (test/e2e/console-find.test.ts
// measures it).

interface Asset {
  headers: Record<string, string>;
  identity: Uint8Array;
  gzip: Uint8Array;
  br: Uint8Array;
}

/** The page at "/" and the files it names: no other request is the console's. */
const ASSET_PATH = /^\/[\w.-]+\.[a-z0-9]+$/i;

/** Which stored encoding to send for an Accept-Encoding header: Brotli, then gzip, else none (q=0 refuses one). */
export function pickEncoding(accept: string | null): "br" | "gzip" | undefined {
  const offered = new Map<string, number>();
  for (const part of (accept ?? "").split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    if (!name) continue;
    const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    offered.set(name, q === undefined ? 1 : Number(q));
  }
  const ok = (e: string) => (offered.get(e) ?? offered.get("*") ?? 0) > 0;
  return ok("br") ? "br" : ok("gzip") ? "gzip" : undefined;
}

export class ConsoleAssets {
  private socket = join(tmpdir(), `propeller-console-${process.pid}-${crypto.randomUUID().slice(0, 8)}.sock`);
  private server?: Server<undefined>;
  private loading?: Promise<Map<string, Asset>>;

  constructor(private bundle: HTMLBundle) {}

  /** Whether a request may be the console's (the page or one of its files); its answer is `respond`'s. */
  claims(req: Request, path: string): boolean {
    return (req.method === "GET" || req.method === "HEAD") && (path === "/" || ASSET_PATH.test(path));
  }

  /** The page or asset, compressed as the request accepts; undefined for a path the console does not have. */
  async respond(req: Request, path: string): Promise<Response | undefined> {
    this.loading ??= this.load().catch((e) => {
      this.loading = undefined; // the next request tries again
      throw e;
    });
    const asset = (await this.loading).get(path);
    if (!asset) return undefined;
    const headers = new Headers(asset.headers);
    headers.set("Vary", "Accept-Encoding");
    headers.set("Referrer-Policy", "no-referrer");
    // Never inside another page's frame: a page on another port of this host is "same site", its frame got the
    // session cookie, and clicks guided through it created an admin token (clickjacking).
    headers.set("X-Frame-Options", "DENY");
    headers.set("Content-Security-Policy", "frame-ancestors 'none'");
    headers.set("X-Content-Type-Options", "nosniff");
    const etag = asset.headers.etag;
    if (etag && req.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers });
    const enc = pickEncoding(req.headers.get("accept-encoding"));
    const body = enc ? asset[enc] : asset.identity;
    if (enc) headers.set("Content-Encoding", enc);
    headers.set("Content-Length", String(body.byteLength));
    return new Response(req.method === "HEAD" ? null : body, { headers });
  }

  private async load(): Promise<Map<string, Asset>> {
    rmSync(this.socket, { force: true });
    this.server ??= Bun.serve({
      unix: this.socket,
      development: false,
      routes: { "/": this.bundle },
      fetch: () => new Response("not found", { status: 404 }),
    });
    const read = async (path: string): Promise<Asset> => {
      const res = await fetch(`http://localhost${path}`, { unix: this.socket });
      if (!res.ok) throw new Error(`console asset ${path}: HTTP ${res.status}`);
      const identity = new Uint8Array(await res.arrayBuffer());
      const headers: Record<string, string> = {};
      for (const k of ["content-type", "etag", "cache-control"]) {
        const v = res.headers.get(k);
        if (v) headers[k] = v;
      }
      return {
        headers,
        identity,
        gzip: gzipSync(identity, { level: 9 }),
        br: brotliCompressSync(identity, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
      };
    };
    const page = await read("/");
    const out = new Map([["/", page]]);
    const html = new TextDecoder().decode(page.identity);
    for (const m of html.matchAll(/(?:src|href)="(\/[^"/]+)"/g)) out.set(m[1]!, await read(m[1]!));
    // The page itself must be asked again each time (it names the current hashes).
    page.headers["cache-control"] = "no-cache";
    return out;
  }

  close(): void {
    this.server?.stop(true);
    rmSync(this.socket, { force: true });
  }
}
