import { MAX_OUTPUT_CHUNK } from "../../core/messages.ts";
import { ByteBuffer } from "./byte-buffer.ts";

export type Stream = "stdout" | "stderr";
export type OutputSink = (stream: Stream, data: string) => void;

/** A run stays quiet this long: a short task's output travels in its result alone, at no extra message. */
export const QUIET_MS = 250;
/** After that, output is passed on at most this often. */
export const FLUSH_MS = 100;
/** A line without its end yet is held this long for the rest, so a reader sees whole lines. */
export const PARTIAL_MS = 1000;

const STREAMS: Stream[] = ["stdout", "stderr"];

/**
 * A running task's output, passed on while it runs (`propeller tasks logs --follow`). Bytes are decoded as UTF-8
 * across writes, held while the run is young or the last pass was recent, then handed to the sink in pieces of
 * at most MAX_OUTPUT_CHUNK characters. `tick` is called from the interrupt check as well as on writes, so output
 * written just before a long silent stretch is not held back. At most `limit` bytes per stream are passed on.
 */
export class OutputTap {
  private started = Date.now();
  private lastFlush = 0;
  private live = false;
  private pending: Record<Stream, string> = { stdout: "", stderr: "" };
  /** Bytes written since the last look, decoded only then: a string appended per write (16 million one-byte
   * writes) was a rope of as many strings (byte-buffer.ts). */
  private raw: Partial<Record<Stream, ByteBuffer>> = {};
  /** When the oldest text still held was written. */
  private heldSince: Record<Stream, number> = { stdout: 0, stderr: 0 };
  private seen: Record<Stream, number> = { stdout: 0, stderr: 0 };
  /** Made on the first write: most runs of a busy proplet write nothing. */
  private decoders: Partial<Record<Stream, TextDecoder>> = {};

  constructor(
    private sink: OutputSink,
    private limit: number,
  ) {}

  write(stream: Stream, bytes: Uint8Array): void {
    const room = this.limit - this.seen[stream];
    if (room <= 0 || bytes.length === 0) return;
    const part = bytes.subarray(0, room);
    this.seen[stream] += part.length;
    this.raw[stream] ??= new ByteBuffer(this.limit);
    const raw = this.raw[stream];
    if (!this.pending[stream] && raw.size === 0) this.heldSince[stream] = Date.now();
    raw.append(part);
    if (part.length < bytes.length || this.seen[stream] >= this.limit) this.truncatedAt[stream] = true;
    this.tick();
  }

  /** Streams whose limit was reached: said once their bytes are decoded. */
  private truncatedAt: Partial<Record<Stream, boolean>> = {};

  /** The bytes written since the last look, decoded onto what is held. */
  private decode(s: Stream): void {
    const raw = this.raw[s];
    if (!raw || raw.size === 0) return;
    this.decoders[s] ??= new TextDecoder();
    this.pending[s] += this.decoders[s].decode(raw.take(), { stream: true });
    if (this.truncatedAt[s]) {
      this.pending[s] += "\n[output truncated]";
      this.truncatedAt[s] = false;
    }
  }

  tick(): void {
    if (!this.pending.stdout && !this.pending.stderr && !this.raw.stdout?.size && !this.raw.stderr?.size) return;
    const now = Date.now();
    if (now - this.started < QUIET_MS || now - this.lastFlush < FLUSH_MS) return;
    this.flush(now, false);
  }

  /** The run ended: what is held goes out, unless nothing was ever passed on (then the result carries it all). */
  end(): void {
    if (this.live) this.flush(Date.now(), true);
  }

  /** Whole lines go out; the unfinished last one waits for its end, up to PARTIAL_MS, unless `all`. */
  private flush(now: number, all: boolean): void {
    this.lastFlush = now; // a held partial line is looked at again only after FLUSH_MS
    for (const s of STREAMS) {
      this.decode(s);
      const held = this.pending[s];
      if (!held) continue;
      const cut = all || now - this.heldSince[s] >= PARTIAL_MS ? held.length : held.lastIndexOf("\n") + 1;
      if (cut === 0) continue;
      const text = held.slice(0, cut);
      this.pending[s] = held.slice(cut);
      this.heldSince[s] = now;
      this.live = true;
      for (let i = 0; i < text.length; i += MAX_OUTPUT_CHUNK) this.sink(s, text.slice(i, i + MAX_OUTPUT_CHUNK));
    }
  }
}
