import type { Aedes, AedesPublishPacket } from "aedes";

// A client of the embedded broker in its own process (the manager, serve's local proplet) without MQTT in between:
// it subscribes and publishes on aedes itself. Over an in-memory MQTT connection every message was encoded by the
// broker and parsed again by the client: with 10,000 proplets heartbeating, the packet work was most of the
// manager's CPU. Only what those clients use is here; the proxy's client and every proplet over a network stay
// real MQTT clients. Such a client is trusted (same process): the broker's authentication and ACL are for others.

export interface BusClient {
  /** Always true for a direct client: the broker is in this process. */
  readonly connected: boolean;
  on(event: "message", fn: (topic: string, payload: Buffer) => void): unknown;
  on(event: "connect" | "offline", fn: () => void): unknown;
  publish(topic: string, payload: string, opts: { qos: 0 | 1; retain?: boolean }, cb?: (err?: Error) => void): unknown;
  subscribeAsync(topics: string[], opts: { qos: 0 | 1 }): Promise<unknown>;
  endAsync(force?: boolean): Promise<unknown>;
}

export class DirectClient implements BusClient {
  readonly connected = true;
  private listeners: ((topic: string, payload: Buffer) => void)[] = [];
  private subscribed: string[] = [];
  private deliver = (packet: AedesPublishPacket, done: () => void) => {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    for (const fn of this.listeners) fn(packet.topic, payload);
    done();
  };

  constructor(private aedes: Aedes) {}

  /** Messages; a direct client never connects again or goes offline, so those events never come. */
  on(event: "message", fn: (topic: string, payload: Buffer) => void): this;
  on(event: "connect" | "offline", fn: () => void): this;
  on(event: string, fn: (topic: string, payload: Buffer) => void): this {
    if (event === "message") this.listeners.push(fn);
    return this;
  }

  publish(topic: string, payload: string, opts: { qos: 0 | 1 }, cb?: (err?: Error) => void): this {
    const packet = {
      cmd: "publish" as const,
      topic,
      payload: Buffer.from(payload),
      qos: opts.qos,
      retain: false,
      dup: false,
    };
    this.aedes.publish(packet, (err) => cb?.(err ?? undefined));
    return this;
  }

  async subscribeAsync(topics: string[]): Promise<void> {
    for (const topic of topics) {
      await new Promise<void>((resolve) => this.aedes.subscribe(topic, this.deliver, resolve));
      this.subscribed.push(topic);
    }
  }

  async endAsync(): Promise<void> {
    for (const topic of this.subscribed.splice(0)) {
      await new Promise<void>((resolve) => this.aedes.unsubscribe(topic, this.deliver, resolve));
    }
  }
}
