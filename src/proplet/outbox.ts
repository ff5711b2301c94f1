import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

// What a proplet has to tell the manager and must not lose while its link is down: results and task metrics, in
// order, in a bounded queue. On disk in the proplet's state dir (one file per message, written before it is sent
// and removed once the broker acknowledged it), so a restart during an outage still delivers them; in memory for
// serve's local proplet, whose broker is in its own process. A message is sent again after a reconnect when its
// acknowledgement was lost: the manager fences results by run id, so a repeat changes nothing.

/** A queued message, as on disk: what is read back is checked, as anything read from outside is. */
const OutboxEntry = z.object({
  topic: z.string().min(1).max(1024),
  payload: z.string(),
  /** Task metrics are given up first when the queue is full; results last. */
  kind: z.enum(["result", "metrics"]),
  /** A result's task and run: until it is delivered, heartbeats still list it (the manager keeps the run). */
  task: z.string().optional(),
  run: z.string().optional(),
});
export type OutboxEntry = z.infer<typeof OutboxEntry>;

export interface OutboxLimits {
  maxEntries: number;
  maxBytes: number;
}

const DEFAULT_OUTBOX_LIMITS: OutboxLimits = { maxEntries: 10_000, maxBytes: 64 << 20 };

interface Stored {
  seq: number;
  entry: OutboxEntry;
  bytes: number;
}

/** Messages in flight at once while draining. */
const WINDOW = 32;

const NAME = /^(\d{12})\.(result|metrics)\.json$/;

/** Where a delivered result goes instead of being removed (run-record.ts keeps it for a start sent again). */
export interface ResultKeeper {
  resultFile(run: string): string | undefined;
  resultKept(run: string): void;
}

export class Outbox {
  private queue: Stored[] = [];
  private bytes = 0;
  private seq = 0;
  private draining = false;
  /** Messages given up because the queue was full, since the proplet started. */
  dropped = 0;

  constructor(
    private dir: string | undefined,
    private limits: OutboxLimits = DEFAULT_OUTBOX_LIMITS,
    private warn: (m: string) => void = () => {},
    private keeper?: ResultKeeper,
  ) {
    if (!dir) return;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // What a previous run of this proplet left: delivered first, in the order it was queued.
    for (const f of readdirSync(dir).sort()) {
      const m = NAME.exec(f);
      if (!m) {
        if (f.endsWith(".tmp")) rmSync(join(dir, f), { force: true }); // a write cut short by a crash
        continue;
      }
      let entry: OutboxEntry | undefined;
      try {
        entry = OutboxEntry.parse({ ...JSON.parse(readFileSync(join(dir, f), "utf8")), kind: m[2] });
      } catch {}
      if (!entry) {
        warn(`outbox: ${f} is not a message this proplet wrote; removed`);
        rmSync(join(dir, f), { force: true });
        continue;
      }
      const bytes = statSync(join(dir, f)).size;
      this.queue.push({ seq: Number(m[1]), entry, bytes });
      this.bytes += bytes;
    }
    this.seq = this.queue.at(-1)?.seq ?? 0;
  }

  get size(): number {
    return this.queue.length;
  }

  /** The runs whose results wait here, as task and run id. */
  pendingResults(): { task: string; run: string }[] {
    return this.queue.flatMap((s) =>
      s.entry.kind === "result" && s.entry.task ? [{ task: s.entry.task, run: s.entry.run ?? "" }] : [],
    );
  }

  private file(s: Stored): string {
    return join(this.dir!, `${String(s.seq).padStart(12, "0")}.${s.entry.kind}.json`);
  }

  /** Queues a message; written to disk before this returns (a kill right after loses nothing). */
  put(entry: OutboxEntry): void {
    const text = JSON.stringify(entry);
    const s: Stored = { seq: ++this.seq, entry, bytes: Buffer.byteLength(text) };
    if (this.dir) {
      const path = this.file(s);
      writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    }
    this.queue.push(s);
    this.bytes += s.bytes;
    this.bound();
  }

  /** Over a limit: the oldest task metrics go first, then the oldest messages of any kind. */
  private bound(): void {
    while (this.queue.length > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const i = this.queue.findIndex((s) => s.entry.kind === "metrics");
      const [gone] = this.queue.splice(Math.max(i, 0), 1);
      if (!gone) return;
      this.remove(gone);
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0)
        this.warn(
          `outbox full (${this.limits.maxEntries} messages or ${this.limits.maxBytes >> 20} MiB): gave up ${this.dropped} so far, oldest ${gone.entry.kind} first`,
        );
    }
  }

  private remove(s: Stored, delivered = false): void {
    this.bytes -= s.bytes;
    if (!this.dir) return;
    // A delivered result is moved, not written again: the run record keeps it for a start sent again.
    const kept =
      delivered && s.entry.kind === "result" && s.entry.run ? this.keeper?.resultFile(s.entry.run) : undefined;
    if (kept) {
      try {
        renameSync(this.file(s), kept);
        this.keeper!.resultKept(s.entry.run!);
        return;
      } catch {}
    }
    rmSync(this.file(s), { force: true });
  }

  /** Whether the result of this run still waits here. */
  hasResult(run: string): boolean {
    return this.queue.some((s) => s.entry.kind === "result" && s.entry.run === run);
  }

  /**
   * Sends what is queued, oldest first, up to `WINDOW` awaiting their acknowledgement at once (MQTT keeps them in
   * order on the one connection); a message leaves the queue once acknowledged. Stops at the first failure (the
   * link went again) and keeps the rest for the next call. One drain at a time.
   */
  async drain(publish: (e: OutboxEntry) => Promise<void>): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.slice(0, WINDOW);
        const sent = await Promise.allSettled(batch.map((s) => publish(s.entry)));
        for (const [i, r] of sent.entries()) {
          const s = batch[i]!;
          const at = this.queue.indexOf(s); // a bound() while it was in flight may have dropped it already
          if (r.status === "fulfilled" && at >= 0) {
            this.queue.splice(at, 1);
            this.remove(s, true);
          }
        }
        const failed = sent.find((r) => r.status === "rejected");
        if (failed) throw (failed as PromiseRejectedResult).reason;
      }
    } finally {
      this.draining = false;
    }
  }
}
