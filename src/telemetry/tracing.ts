import type { SpanContext } from "../core/traceparent.ts";
import { tag } from "../log.ts";

const log = tag("trace");

// Tracing, the third middleware beside logs and metrics: spans for REST requests, dispatch and the run on the
// proplet, exported as OTLP/HTTP JSON to `OTEL_EXPORTER_OTLP_ENDPOINT` (`…/v1/traces`). One tracer per process,
// off (and free: one branch) when no endpoint is set. Spans are batched and sent every second or every 4,096.

export const SpanKind = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

interface SpanData {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano?: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string; boolValue?: boolean } }[];
  status?: { code: number; message?: string };
}

/** Nanoseconds since the epoch as a decimal string (beyond 2^53: built from its millisecond and sub-ms parts). */
function nowNanos(): string {
  const ms = performance.timeOrigin + performance.now();
  const whole = Math.floor(ms);
  return `${whole}${String(Math.floor((ms - whole) * 1e6)).padStart(6, "0")}`;
}

/** Span and trace ids need to be unique, not secret (W3C asks for randomness, not crypto): hex of random bytes,
 * drawn from a pool refilled 4 KiB at a time, through a table (measured: 5 µs a span before, mostly here). */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const pool = new Uint8Array(4096);
let poolAt = pool.length;
function fastHex(chars: number): string {
  const bytes = chars >> 1;
  if (poolAt + bytes > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  let s = "";
  for (let i = 0; i < bytes; i++) s += HEX[pool[poolAt++]!];
  return s;
}

const attr = (key: string, v: string | number | boolean) => ({
  key,
  value:
    typeof v === "string" ? { stringValue: v } : typeof v === "number" ? { intValue: String(v) } : { boolValue: v },
});

export class Span {
  constructor(
    private tracer: Tracer,
    private data: SpanData,
  ) {}
  get context(): SpanContext {
    return { traceId: this.data.traceId, spanId: this.data.spanId, sampled: true };
  }
  set(key: string, v: string | number | boolean): this {
    this.data.attributes.push(attr(key, v));
    return this;
  }
  /** Names it anew (a request's span by its route, once routed). */
  rename(name: string): this {
    this.data.name = name;
    return this;
  }
  /** Ends the span; an error marks it failed with the message. */
  end(error?: string): void {
    if (this.data.endTimeUnixNano) return;
    this.data.endTimeUnixNano = nowNanos();
    this.data.status = error ? { code: 2, message: error.slice(0, 512) } : { code: 1 };
    this.tracer.record(this.data);
  }
}

/**
 * The span whose work is running now, set only for the synchronous part of a call (`within`): a request's handler
 * places a task at once, before its first await, so a dispatch made then is the request's child. (An
 * AsyncLocalStorage would follow awaits too, and measurably slowed every request while tracing was on.)
 */
let current: SpanContext | undefined;

/** Spans waiting for export at most: a collector that is down or slow costs dropped spans, not the heap. */
export const MAX_QUEUED_SPANS = 65_536;

export class Tracer {
  private queue: SpanData[] = [];
  /** Spans dropped because the queue was full, told in the log at the next export. */
  private dropped = 0;
  private timer?: Timer;
  private sending?: Promise<void>;

  constructor(
    private endpoint: string | undefined,
    private service: string,
    private ratio = 1,
  ) {}

  get enabled(): boolean {
    return this.endpoint !== undefined;
  }

  /** A new span under `parent` (or the request's span, or a new trace); undefined when tracing is off or not sampled. */
  start(
    name: string,
    kind: number,
    parent?: SpanContext,
    attributes: Record<string, string | number> = {},
  ): Span | undefined {
    if (!this.endpoint) return undefined;
    const p = parent ?? current;
    if (p ? !p.sampled : Math.random() >= this.ratio) return undefined;
    return new Span(this, {
      traceId: p?.traceId ?? fastHex(32),
      spanId: fastHex(16),
      ...(p ? { parentSpanId: p.spanId } : {}),
      name,
      kind,
      startTimeUnixNano: nowNanos(),
      attributes: Object.entries(attributes).map(([k, v]) => attr(k, v)),
    });
  }

  /** Runs `fn` with `span` as the parent of spans `fn` starts before its first await. */
  within<T>(span: Span | undefined, fn: () => T): T {
    if (!span) return fn();
    const before = current;
    current = span.context;
    try {
      return fn();
    } finally {
      current = before;
    }
  }

  get queued(): number {
    return this.queue.length;
  }

  record(s: SpanData): void {
    if (this.queue.length >= MAX_QUEUED_SPANS) {
      this.dropped++;
      return;
    }
    this.queue.push(s);
    if (this.queue.length >= 4096) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), 1000);
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sending;
    const spans = this.queue.splice(0);
    if (this.dropped) {
      log.warn(`${this.dropped} span(s) dropped: the export queue was full (${MAX_QUEUED_SPANS})`);
      this.dropped = 0;
    }
    if (!spans.length || !this.endpoint) return;
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [attr("service.name", this.service)] },
          scopeSpans: [{ scope: { name: "propeller" }, spans }],
        },
      ],
    };
    this.sending = fetch(`${this.endpoint.replace(/\/$/, "")}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    }).then(
      (r) => {
        if (!r.ok) log.warn(`OTLP export of ${spans.length} span(s): HTTP ${r.status}`);
      },
      (e) => log.warn(`OTLP export of ${spans.length} span(s) failed: ${e instanceof Error ? e.message : e}`),
    );
    await this.sending;
  }
}

/** The process's tracer: off until `configureTracing` sets an endpoint. */
let tracer = new Tracer(undefined, "propeller");
export const tracing = () => tracer;

export function configureTracing(endpoint: string | undefined, service: string, ratio = 1): Tracer {
  tracer = new Tracer(endpoint || undefined, service, Math.min(1, Math.max(0, ratio)));
  if (tracer.enabled) log.info(`tracing to ${endpoint} as ${service} (sampling ${ratio})`);
  return tracer;
}
