import type { MqttClient } from "mqtt";
import { publishJson, subscribeAcked } from "../broker/client.ts";
import { ByteRate, type ByteRateBound } from "../core/byte-rate.ts";
import { decode } from "../core/messages.ts";
import {
  type ChunkError,
  type ChunkMsg,
  ChunkRequest,
  canonicalReference,
  parseReference,
  registryListed,
} from "../core/oci.ts";
import { matchesApproved } from "../core/ocicrypt.ts";
import { Folded, OncePer } from "../core/once-per.ts";
import { type Channel, topics } from "../core/topics.ts";
import { Turns } from "../core/turns.ts";
import { tag } from "../log.ts";
import { RegistryError } from "./http.ts";
import type { RegistryClient } from "./registry.ts";

const log = tag("proxy");

// The OCI proxy: answers `registry/proplet` requests by fetching the module from its registry and publishing it
// in chunks on `registry/server` (upstream's format, plus the whole module's digest). It serves only what the
// manager dispatched and what the site's allow-list of registries names; anything else is refused before any
// network request. Concurrent requests for one module share one fetch; a request naming `chunks` gets only those
// again. Fetches run a few at a time, a bounded number wait, and the rest are told to try again.

export interface ProxyPolicy {
  /** Registries (host[:port], lowercase) any proplet may fetch from. */
  allowed: string[];
  /** Whether the manager dispatched `ref` (canonical) to `propletId` (to any proplet, when undefined). */
  dispatched?: (ref: string, propletId: string | undefined) => boolean;
  /**
   * The broker writes the sender's entity id into a request's `proplet_id` (serve's embedded broker); otherwise
   * that field is only a claim, and the asker counts as unknown.
   */
  trustPropletId: boolean;
  /**
   * The site's trust policy (serve --trust-policy): a module it refuses is never fetched, and a module whose
   * bytes are not the approved layer is never sent.
   */
  trust?: (ref: string) => Promise<{ allowed: boolean; reason: string; moduleDigest?: string }>;
  /** Modules fetched and sent at once (each held in memory meanwhile, up to the module bound). */
  maxConcurrent?: number;
  /** Of those, from one registry. */
  perRegistry?: number;
  /** Modules waiting for a turn; past this a request is answered "busy". */
  maxWaiting?: number;
  /** Modules one proplet's requests may have fetched or waiting at once (those of unnamed askers count as one). */
  perProplet?: number;
}

/** Refusals answered per proplet: past them a request is dropped unanswered (its sender floods). */
const REFUSALS: ByteRateBound = { perSecond: 20, burst: 200 };
/** Chunk bytes (as base64) sent per second to one proplet, after a burst of twice the largest module. */
const SEND_PER_SECOND = 8 << 20;
/** Modules read from the blob cache and sent at once: no registry request, but each is held in memory. */
const CACHED_AT_ONCE = 4;

const NOT_ALLOWED =
  "not allowed: this proxy serves only modules the manager dispatched to this proplet and registries on its allow-list";

interface Job {
  /** Who asked: their proplet ids (undefined: a request that named none). */
  askers: Set<string | undefined>;
  /** Before the module is known: every chunk wanted, or these. */
  all: boolean;
  wanted: Set<number>;
  /** Once sending: the chunks still to publish. */
  queue: number[];
  total?: number;
}

export class ProxyService {
  private t: ReturnType<typeof topics>;
  private jobs = new Map<string, Job>();
  /** Modules fetched or waiting, by the proplet whose request started them. */
  private owners = new Map<string, number>();
  private turns: Turns;
  /** Modules the blob cache holds take these turns, not the registries'. */
  private cached = new Turns(CACHED_AT_ONCE, CACHED_AT_ONCE);
  private refusals = new ByteRate(REFUSALS);
  private sent: ByteRate;
  /** Floods said in the log once a minute per proplet. */
  private said = new OncePer(60_000);
  /** Refusals logged per proplet and kind: one line in 10 s at most. */
  private folds = new Folded(10_000);

  constructor(
    private client: MqttClient,
    channel: Channel,
    private registry: RegistryClient,
    private chunkSize: number,
    private policy: ProxyPolicy,
  ) {
    this.t = topics(channel);
    this.turns = new Turns(policy.maxConcurrent ?? 4, policy.perRegistry ?? 2);
    // A proplet granted a module asked for it again every 500 ms: 4.4 GB sent in 35 s. Its chunks now wait for its
    // budget; a proplet that lost a whole module still gets it again at once.
    this.sent = new ByteRate({ perSecond: SEND_PER_SECOND, burst: 2 * Math.ceil((registry.maxModuleBytes * 4) / 3) });
  }

  async listen(): Promise<void> {
    this.client.on("message", (topic, payload) => {
      if (topic !== this.t.registryRequest) return;
      const d = decode(ChunkRequest, payload);
      if (!d.ok) {
        log.warn(`dropped malformed registry request: ${d.error}`);
        return;
      }
      void this.answer(d.value).catch((e) => log.warn(`registry request: ${e instanceof Error ? e.message : e}`));
    });
    await subscribeAcked(this.client, [this.t.registryRequest]);
  }

  /** Modules being fetched or sent, and waiting for a turn (for tests and figures). */
  get active(): number {
    return this.jobs.size;
  }

  private allows(app: string, asker: string | undefined): boolean {
    const ref = canonicalReference(app);
    if (!ref) return false;
    const parsed = parseReference(app);
    if (typeof parsed !== "string" && registryListed(this.policy.allowed, parsed.registry)) return true;
    return this.policy.dispatched?.(ref, asker) ?? false;
  }

  /** An error for the proplet that asked; the embedded broker delivers it to that one only. */
  private refuse(app: string, to: string | undefined, error: string): Promise<void> {
    const msg: ChunkError = { app_name: app, error, ...(to ? { proplet_id: to } : {}) };
    return publishJson(this.client, this.t.registryChunks, msg).catch(() => {});
  }

  /**
   * A request refused before any network request (not allowed, or the proxy busy): answered while its sender is
   * within REFUSALS, then dropped, said once a minute; logged folded per sender and answer. 50,000 of them were
   * 50,000 log lines and took serve from 86 to 304 MiB; answered "busy", 3,000 were 1,200 answers in 2 s.
   */
  private refuseAsked(app: string, to: string | undefined, error: string, why: string): Promise<void> {
    const key = to ?? "";
    const now = Date.now();
    if (this.refusals.wait(key, now) > 0) {
      if (this.said.due(`refused ${key}`, now))
        log.warn(`proplet ${to ?? "(unnamed)"} asks for more modules than are answered: dropping them`);
      return Promise.resolve();
    }
    this.refusals.spend(key, 1, now);
    const more = this.folds.say(`${key}\n${why}`, now);
    if (more !== undefined) log.warn(`refused ${JSON.stringify(app)} to proplet ${to ?? "(unnamed)"}: ${why}${more}`);
    return this.refuse(app, to, error);
  }

  private async answer(req: ChunkRequest): Promise<void> {
    const app = req.app_name;
    // Errors go to whoever the request names; only a proplet_id the broker stamped earns that proplet's grants.
    const replyTo = req.proplet_id;
    const asker = this.policy.trustPropletId ? req.proplet_id : undefined;
    if (!this.allows(app, asker)) return this.refuseAsked(app, replyTo, NOT_ALLOWED, "neither dispatched nor allowed");
    const job = this.jobs.get(app);
    if (job) {
      job.askers.add(replyTo);
      if (job.total === undefined) {
        if (req.chunks) for (const i of req.chunks) job.wanted.add(i);
        else job.all = true;
      } else this.enqueue(job, req.chunks);
      return;
    }
    // One proplet cannot fill the queue for the others: a few modules of its own at a time.
    const owner = replyTo ?? "";
    const own = this.owners.get(owner) ?? 0;
    if (
      this.jobs.size >= (this.policy.maxConcurrent ?? 4) + (this.policy.maxWaiting ?? 64) ||
      own >= (this.policy.perProplet ?? 4)
    )
      return this.refuseAsked(app, replyTo, "the proxy is busy: try again later", "busy");
    this.owners.set(owner, own + 1);
    const mine: Job = { askers: new Set([replyTo]), all: !req.chunks, wanted: new Set(req.chunks), queue: [] };
    this.jobs.set(app, mine);
    // A module the blob cache holds does not wait behind registries that are slow to answer.
    const turns = this.registry.ready(app) ? this.cached : this.turns;
    const host = registryOf(app);
    await turns.take(host);
    try {
      await this.serve(app, mine);
    } finally {
      this.jobs.delete(app);
      const left = (this.owners.get(owner) ?? 1) - 1;
      if (left > 0) this.owners.set(owner, left);
      else this.owners.delete(owner);
      turns.give(host);
    }
  }

  private enqueue(job: Job, chunks: number[] | undefined): void {
    const total = job.total!;
    const queued = new Set(job.queue);
    for (const i of chunks ?? Array.from({ length: total }, (_, k) => k))
      if (i < total && !queued.has(i)) {
        job.queue.push(i);
        queued.add(i);
      }
  }

  private async serve(app: string, job: Job): Promise<void> {
    let mod: { bytes: Uint8Array; digest: string; encrypted?: boolean };
    try {
      const verdict = await this.policy.trust?.(app);
      if (verdict && !verdict.allowed) {
        log.warn(`refused ${app}: ${verdict.reason}`);
        await Promise.all(
          [...job.askers].map((to) => this.refuse(app, to, `refused by the trust policy: ${verdict.reason}`)),
        );
        return;
      }
      mod = await this.registry.pull(app);
      if (verdict?.moduleDigest && !matchesApproved(mod.bytes, verdict.moduleDigest)) {
        log.warn(`refused ${app}: its layer is not ${verdict.moduleDigest}, the one the policy approved`);
        await Promise.all(
          [...job.askers].map((to) =>
            this.refuse(app, to, "refused by the trust policy: the module changed since it was approved"),
          ),
        );
        return;
      }
    } catch (e) {
      // The log has the whole story; the proplets only what names no address of the gateway's network.
      log.warn(`fetching ${app}: ${e instanceof Error ? e.message : e}`);
      const error = e instanceof RegistryError ? e.safe : "the proxy could not fetch the module";
      await Promise.all([...job.askers].map((to) => this.refuse(app, to, error)));
      return;
    }
    const total = Math.max(1, Math.ceil(mod.bytes.length / this.chunkSize));
    job.total = total;
    this.enqueue(job, job.all ? undefined : [...job.wanted]);
    log.debug(`sending ${app}: ${job.queue.length} of ${total} chunk(s), ${mod.bytes.length} bytes`);
    const b64Chunk = Math.ceil(this.chunkSize / 3) * 4;
    while (job.queue.length) {
      const i = job.queue.shift()!;
      // Each chunk names its proplet, so the embedded broker sends it there alone: with several askers, a copy for
      // each (a chunk naming no one would reach every proplet, also those the module was not dispatched to). An
      // asker the broker did not name (an external broker) gets one copy naming no one. Past its budget, a proplet
      // misses this chunk and asks for it again later, as for a chunk lost.
      const to = (job.askers.has(undefined) ? [undefined] : [...job.askers]).filter((a) => this.mayGet(a, b64Chunk));
      if (!to.length) continue;
      const part = mod.bytes.subarray(i * this.chunkSize, (i + 1) * this.chunkSize);
      const base: ChunkMsg = {
        app_name: app,
        chunk_idx: i,
        total_chunks: total,
        data: Buffer.from(part).toString("base64"),
        digest: mod.digest,
      };
      for (const asker of to) {
        try {
          await publishJson(this.client, this.t.registryChunks, asker ? { ...base, proplet_id: asker } : base);
        } catch (e) {
          // A lost chunk is re-requested by the proplet; keep sending the others.
          log.warn(`chunk ${i} of ${app} not sent: ${e instanceof Error ? e.message : e}`);
        }
      }
    }
  }

  /** Whether `asker` may be sent `bytes` more now (spent if so); held back, it is said once a minute. */
  private mayGet(asker: string | undefined, bytes: number): boolean {
    const key = asker ?? "";
    const now = Date.now();
    if (this.sent.wait(key, now) === 0) {
      this.sent.spend(key, bytes, now);
      return true;
    }
    if (this.said.due(`sent ${key}`, now))
      log.warn(
        `proplet ${asker ?? "(unnamed)"} asks for more module bytes than ${SEND_PER_SECOND >> 20} MiB a second: chunks held back`,
      );
    return false;
  }
}

/** The registry a reference names (the key of its fetch turns). */
function registryOf(app: string): string {
  const ref = parseReference(app);
  return typeof ref === "string" ? "" : ref.registry;
}
