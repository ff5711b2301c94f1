import { publishJson, subscribeAcked } from "../broker/client.ts";
import type { BusClient } from "../broker/direct.ts";
import { parsedOf } from "../broker/parsed.ts";
import { FlUpdate } from "../core/fl-experiment.ts";
import {
  AliveMsg,
  CreateMsg,
  decode,
  type InvokeMsg,
  InvokeResultMsg,
  OutputMsg,
  PropletMetricsMsg,
  plainHeartbeat,
  ResultMsg,
  type StartMsg,
  type StopMsg,
  TaskMetricsMsg,
} from "../core/messages.ts";
import { plainResult } from "../core/messages-plain.ts";
import { Folded } from "../core/once-per.ts";
import { type Channel, FL_UPDATES, parseFlUpdateTopic, topics } from "../core/topics.ts";
import { tag } from "../log.ts";
import type { ManagerBus } from "./dispatcher.ts";

const log = tag("manager");

// The manager's side of the MQTT protocol: publishes start/stop, and hands each proplet message, parsed with its
// core schema, to the room that handles it. A malformed payload is logged and dropped; the process keeps running.

/** Where each proplet message goes. */
export interface Inbound {
  create(m: CreateMsg): void;
  alive(m: AliveMsg): void;
  result(m: ResultMsg): void;
  propletMetrics(m: PropletMetricsMsg): void;
  taskMetrics(m: TaskMetricsMsg): void;
  output(m: OutputMsg): void;
  invokeResult(m: InvokeResultMsg): void;
  /** An FL update on upstream's fallback topic; `sender` is the proplet the topic names. */
  flUpdate(m: FlUpdate, sender: string): Promise<unknown>;
}

export class MqttManagerBus implements ManagerBus {
  private t: ReturnType<typeof topics>;
  /** Messages received and published, for /metrics. */
  readonly counts = { received: 0, sent: 0 };

  /**
   * @param qos 0 when the manager sits in the same process as the broker: its link cannot drop, and with clean
   * sessions QoS 1 adds only acknowledgements (the network hop to a proplet is covered by the proplet's own
   * subscription and publish QoS). 1 over a network.
   */
  /** Where each topic's messages go, once `listen` is called. */
  private handlers?: Record<string, (payload: Buffer) => void>;
  /**
   * Messages that came before `listen`: a persistent session (managers sharing a site) gets what queued on the
   * broker right after connecting, and those are results that must not be dropped. Bounded.
   */
  private early: [string, Buffer][] = [];

  constructor(
    private client: BusClient,
    channel: Channel,
    private qos: 0 | 1 = 1,
  ) {
    this.t = topics(channel);
    client.on("message", (topic, payload) => {
      this.counts.received++;
      if (this.handlers) (this.handlers[topic] ?? this.flHandler(topic))?.(payload);
      else if (this.early.length < 100_000) this.early.push([topic, payload]);
    });
  }

  start(msg: StartMsg): Promise<void> {
    this.counts.sent++;
    return publishJson(this.client, this.t.start, msg, this.qos);
  }

  stop(msg: StopMsg): Promise<void> {
    this.counts.sent++;
    return publishJson(this.client, this.t.stop, msg, this.qos);
  }

  invoke(msg: InvokeMsg): Promise<void> {
    this.counts.sent++;
    return publishJson(this.client, this.t.invoke, msg, this.qos);
  }

  async listen(to: Inbound): Promise<void> {
    const t = this.t;
    this.handlers = {
      [t.create]: (p) => handle(t.create, CreateMsg, p, (m) => to.create(m)),
      [t.alive]: (p) => handle(t.alive, AliveMsg, p, (m) => to.alive(m), plainHeartbeat),
      [t.results]: (p) => handle(t.results, ResultMsg, p, (m) => to.result(m), plainResult),
      [t.metrics]: (p) => handle(t.metrics, PropletMetricsMsg, p, (m) => to.propletMetrics(m)),
      [t.taskMetrics]: (p) => handle(t.taskMetrics, TaskMetricsMsg, p, (m) => to.taskMetrics(m)),
      [t.output]: (p) => handle(t.output, OutputMsg, p, (m) => to.output(m)),
      [t.invokeResults]: (p) => handle(t.invokeResults, InvokeResultMsg, p, (m) => to.invokeResult(m)),
    };
    this.inbound = to;
    for (const [topic, payload] of this.early.splice(0)) (this.handlers[topic] ?? this.flHandler(topic))?.(payload);
    await subscribeAcked(this.client, [t.propletAll, FL_UPDATES], this.qos);
  }

  private inbound?: Inbound;

  /** An update on `fl/rounds/{round}/updates/{proplet}`: it must be about that round and that proplet. */
  private flHandler(topic: string): ((payload: Buffer) => void) | undefined {
    const at = parseFlUpdateTopic(topic);
    if (!at || !this.inbound) return undefined;
    const to = this.inbound;
    return (p) => {
      const r = decode(FlUpdate, p);
      const why = !r.ok ? r.error : r.value.round_id !== at.round ? `it is for round ${r.value.round_id}` : undefined;
      const say = (line: string) => {
        const more = malformed.say(`fl ${at.proplet}`, Date.now());
        if (more !== undefined) log.warn(`${line}${more}`);
      };
      if (why || !r.ok) return say(`dropped FL update on ${topic}: ${why}`);
      to.flUpdate(r.value, at.proplet).catch((e) =>
        say(`refused FL update on ${topic}: ${e instanceof Error ? e.message : e}`),
      );
    };
  }
}

const malformed = new Folded(10_000);

function handle<S extends Parameters<typeof decode>[0]>(
  topic: string,
  schema: S,
  payload: Buffer,
  fn: (m: ReturnType<typeof decode<S>> extends { ok: true; value: infer V } ? V : never) => void,
  plain?: Parameters<typeof decode<S>>[3],
): void {
  const r = decode(schema, payload, parsedOf(payload), plain);
  if (!r.ok) {
    // Folded per topic: a proplet's flood of malformed results was 470,000 lines in 8 s.
    const more = malformed.say(topic, Date.now());
    if (more !== undefined) log.warn(`dropped malformed message on ${topic}: ${r.error}${more}`);
    return;
  }
  try {
    fn(r.value as never);
  } catch (e) {
    log.error(`handling ${topic} failed: ${e instanceof Error ? e.stack : e}`);
  }
}
