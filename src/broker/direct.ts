import type { Aedes, AedesPublishPacket } from "aedes";

// The manager's client on its own embedded broker, without MQTT in between: it subscribes and publishes on aedes
// itself. Over an in-memory MQTT connection every message was encoded by the broker and parsed again by the
// client: with 10,000 proplets heartbeating, the packet work was most of the manager's CPU. Only what the
// manager's bus uses is here (bus.ts); a proplet's or the proxy's client stays a real MQTT client.

export interface BusClient {
  on(event: "message", fn: (topic: string, payload: Buffer) => void): unknown;
  publish(topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }, cb: (err?: Error) => void): unknown;
  subscribeAsync(topics: string[], opts: { qos: 0 | 1 }): Promise<unknown>;
  endAsync(): Promise<unknown>;
}

export class DirectClient implements BusClient {
  private listeners: ((topic: string, payload: Buffer) => void)[] = [];
  private subscribed: string[] = [];
  private deliver = (packet: AedesPublishPacket, done: () => void) => {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    for (const fn of this.listeners) fn(packet.topic, payload);
    done();
  };

  constructor(private aedes: Aedes) {}

  on(_event: "message", fn: (topic: string, payload: Buffer) => void): this {
    this.listeners.push(fn);
    return this;
  }

  publish(topic: string, payload: string, opts: { qos: 0 | 1 }, cb: (err?: Error) => void): this {
    const packet = {
      cmd: "publish" as const,
      topic,
      payload: Buffer.from(payload),
      qos: opts.qos,
      retain: false,
      dup: false,
    };
    this.aedes.publish(packet, (err) => cb(err ?? undefined));
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
