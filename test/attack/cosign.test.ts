import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { endless as endlessBody } from "../endless.ts";
import { cli, http, type Serve, startServe, tempDir } from "../helpers.ts";

// cosign's signature store attacked (docs/ARCHITECTURE.md, "Trusted code"): a hostile registry on loopback
// (Bun.serve) serves images whose `sha256-<hex>.sig` is endless, huge, lists thousands of signature layers, or
// names payloads that are huge or endless. serve, under a sigstoreSigned policy, must refuse each image with
// the rule and scope named, read only bounded bytes, and stay healthy.

const MiB = 1 << 20;
const dir = tempDir("cosign-attack-");
const MEDIA = "application/vnd.oci.image.manifest.v1+json";
const SIG_MEDIA = "application/vnd.dev.cosign.simplesigning.v1+json";
const sha = (b: string | Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
}

/** An image manifest per tag (its digest differs per tag), never pulled: the policy refuses first. */
const image = (tag: string) =>
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA,
    config: { mediaType: "application/vnd.wasm.config.v0+json", digest: sha(tag), size: 2 },
    layers: [{ mediaType: "application/wasm", digest: sha(`${tag}-layer`), size: 100 }],
  });
const sigLayer = (digest: string, size: number, signature = "MEUCIQ") => ({
  mediaType: SIG_MEDIA,
  digest,
  size,
  annotations: { "dev.cosignproject.cosign/signature": signature },
});
const sigManifest = (layers: unknown[]) =>
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA,
    config: { mediaType: MEDIA, digest: sha("c"), size: 2 },
    layers,
  });

/** Bytes produced per path for endless bodies, and every path asked. */
const produced = new Map<string, number>();
const asked: string[] = [];
const endless = (path: string) => endlessBody(produced, path, new Uint8Array(64 * 1024).fill(0x7b), MEDIA);

const TAGS = ["endless", "huge", "many", "bigpayload", "endlesspayload", "garbage"] as const;
const sigOf = new Map(TAGS.map((t) => [`${sha(image(t)).replace(":", "-")}.sig`, t]));
const PAYLOAD = sha("payload");

let hostile: ReturnType<typeof Bun.serve>;
let s: Serve;

beforeAll(async () => {
  hostile = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      asked.push(path);
      if (path === "/v2/") return new Response("{}");
      const m = /^\/v2\/app\/manifests\/(.+)$/.exec(path);
      const tag = m?.[1];
      if (tag && (TAGS as readonly string[]).includes(tag))
        return new Response(image(tag), { headers: { "content-type": MEDIA } });
      const kind = tag ? sigOf.get(tag) : undefined;
      if (kind === "endless") return endless(path);
      if (kind === "huge") {
        const big = sigManifest([sigLayer(PAYLOAD, 200, "A".repeat(8 * MiB))]);
        return new Response(big, { headers: { "content-type": MEDIA } });
      }
      if (kind === "many")
        return new Response(sigManifest(Array.from({ length: 200 }, (_, i) => sigLayer(sha(`p${i}`), 200))), {
          headers: { "content-type": MEDIA },
        });
      if (kind === "bigpayload") return new Response(sigManifest([sigLayer(PAYLOAD, 1 << 30)]));
      if (kind === "endlesspayload") return new Response(sigManifest([sigLayer(sha("endless-payload"), 300)]));
      if (kind === "garbage") return new Response(sigManifest([sigLayer(sha("garbage"), 10, "!!".repeat(4000))]));
      if (path === `/v2/app/blobs/${sha("endless-payload")}`) return endless(path);
      if (path.startsWith("/v2/app/blobs/")) return new Response("{}".padEnd(200, " "));
      return new Response("", { status: 404 });
    },
  });
  expect(cli(["keys", "create", "--output-key-prefix", join(dir, "site")]).code).toBe(0);
  writeFileSync(
    join(dir, "policy.json"),
    JSON.stringify({ default: [{ type: "sigstoreSigned", keyPath: join(dir, "site.pub") }] }),
  );
  s = await startServe({ extra: ["--trust-policy", join(dir, "policy.json")] });
}, 30_000);

afterAll(async () => {
  await s?.kill("SIGKILL");
  hostile?.stop(true);
});

describe("a hostile cosign signature store", () => {
  test("endless, huge and crowded .sig manifests and payloads: each image refused, bounded reads, serve healthy", async () => {
    const host = `127.0.0.1:${hostile.port}`;
    const before = rssMiB(s.proc.pid);
    const reasons: Record<string, string> = {};
    for (const tag of TAGS) {
      const t0 = performance.now();
      const r = await http(`${s.url}/tasks`, "POST", { name: tag, image_url: `${host}/app:${tag}` });
      expect(r.status).toBe(400);
      expect(r.body.error).toStartWith(
        `image_url: ${host}/app requires a signature by key ${/by key (\S+) /.exec(r.body.error)?.[1]} (scope default); none found`,
      );
      expect(performance.now() - t0).toBeLessThan(10_000);
      reasons[tag] = r.body.error;
    }
    expect(reasons.endless).toContain("more than 65536 bytes");
    expect(reasons.huge).toContain("more than 65536");
    expect(reasons.garbage).toContain("not a base64 ECDSA signature");
    expect(reasons.endlesspayload).toContain("more than 300 bytes");
    // The endless bodies were cut: what the registry produced (socket buffers included) stays a few MiB and
    // stops growing once serve has refused.
    const cut = new Map(produced);
    await Bun.sleep(500);
    for (const [path, n] of produced) {
      expect(n, path).toBeLessThan(16 * MiB);
      expect(n, path).toBe(cut.get(path)!);
    }
    // 200 signature layers: at most 16 payloads fetched; a payload said to be 1 GiB: never fetched.
    const blobs = asked.filter((p) => p.startsWith("/v2/app/blobs/"));
    expect(blobs.filter((p) => /sha256:/.test(p) && !p.includes(sha("endless-payload"))).length).toBeLessThanOrEqual(
      16,
    );
    expect(blobs).not.toContain(`/v2/app/blobs/${PAYLOAD}`);
    const after = rssMiB(s.proc.pid);
    expect(after - before).toBeLessThan(64);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.token}` } })).text();
    expect(metrics).toMatch(/propeller_trust_refusals_total\{rule="sigstoreSigned"\} ([6-9]|\d\d)/);
    console.log(
      JSON.stringify({
        attack: "cosign signature store",
        rss_mib_before: Math.round(before),
        rss_mib_after: Math.round(after),
        endless_bytes_read: Object.fromEntries(produced),
        blob_requests: blobs.length,
      }),
    );
  }, 60_000);
});
