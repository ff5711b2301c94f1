import type { MqttClient } from "mqtt";
import { publishJson } from "../broker/client.ts";
import { decode } from "../core/messages.ts";
import { type ChunkError, type ChunkMsg, ChunkRequest } from "../core/oci.ts";
import { type Channel, topics } from "../core/topics.ts";
import { tag } from "../log.ts";
import type { RegistryClient } from "./registry.ts";

const log = tag("proxy");

// The OCI proxy: answers `registry/proplet` requests by fetching the module from its registry and publishing it
// in chunks on `registry/server` (upstream's format, plus the whole module's digest). Concurrent requests for
// one module share one fetch; a request naming `chunks` gets only those again.

export class ProxyService {
  private t: ReturnType<typeof topics>;
  private inflight = new Map<string, Promise<{ bytes: Uint8Array; digest: string }>>();
  /**
   * Chunks still to publish per module. Every proplet on the channel receives every chunk, so a request that
   * arrives while a module is being sent only adds the chunks already gone by.
   */
  private senders = new Map<string, { queue: number[]; queued: Set<number> }>();

  constructor(
    private client: MqttClient,
    channel: Channel,
    private registry: RegistryClient,
    private chunkSize: number,
  ) {
    this.t = topics(channel);
  }

  async listen(): Promise<void> {
    this.client.on("message", (topic, payload) => {
      if (topic !== this.t.registryRequest) return;
      const d = decode(ChunkRequest, payload);
      if (!d.ok) {
        log.warn(`dropped malformed registry request: ${d.error}`);
        return;
      }
      void this.answer(d.value);
    });
    await this.client.subscribeAsync(this.t.registryRequest, { qos: 1 });
  }

  private fetch(app: string) {
    let p = this.inflight.get(app);
    if (!p) {
      p = this.registry.pull(app).finally(() => this.inflight.delete(app));
      this.inflight.set(app, p);
    }
    return p;
  }

  private async answer(req: ChunkRequest): Promise<void> {
    const app = req.app_name;
    let mod: { bytes: Uint8Array; digest: string };
    try {
      mod = await this.fetch(app);
    } catch (e) {
      const error = `fetching ${app}: ${e instanceof Error ? e.message : e}`;
      log.warn(error);
      await publishJson(this.client, this.t.registryChunks, { app_name: app, error } satisfies ChunkError).catch(
        () => {},
      );
      return;
    }
    const total = Math.max(1, Math.ceil(mod.bytes.length / this.chunkSize));
    const wanted = req.chunks?.filter((i) => i < total) ?? Array.from({ length: total }, (_, i) => i);
    const active = this.senders.get(app);
    if (active) {
      for (const i of wanted) {
        if (!active.queued.has(i)) {
          active.queue.push(i);
          active.queued.add(i);
        }
      }
      return;
    }
    const sender = { queue: [...wanted], queued: new Set(wanted) };
    this.senders.set(app, sender);
    log.debug(`sending ${app}: ${wanted.length} of ${total} chunk(s), ${mod.bytes.length} bytes`);
    try {
      while (sender.queue.length) {
        const i = sender.queue.shift()!;
        sender.queued.delete(i);
        const part = mod.bytes.subarray(i * this.chunkSize, (i + 1) * this.chunkSize);
        const msg: ChunkMsg = {
          app_name: app,
          chunk_idx: i,
          total_chunks: total,
          data: Buffer.from(part).toString("base64"),
          digest: mod.digest,
        };
        try {
          await publishJson(this.client, this.t.registryChunks, msg);
        } catch (e) {
          // A lost chunk is re-requested by the proplet; keep sending the others.
          log.warn(`chunk ${i} of ${app} not sent: ${e instanceof Error ? e.message : e}`);
        }
      }
    } finally {
      this.senders.delete(app);
    }
  }
}
