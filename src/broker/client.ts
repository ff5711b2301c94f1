import { Duplex } from "node:stream";
import type { Aedes } from "aedes";
import mqtt, { type IClientOptions, MqttClient } from "mqtt";
import { log } from "../log.ts";
import type { BusClient } from "./direct.ts";
import "./packet-numbers.ts";

// One way to open an MQTT client for the manager and the proplet. Addresses follow upstream's rules
// (`tcp://`, `mqtt://`, `ws://`, `mqtts://`, `ssl://`, `tls://`, bare `host:port`), without its
// `localhost:1883` parsing bug.

export function normalizeMqttUrl(address: string): string {
  const a = address.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) {
    return a.replace(/^tcp:\/\//i, "mqtt://").replace(/^(ssl|tls):\/\//i, "mqtts://");
  }
  return a.includes(":") && !a.startsWith("[") ? `mqtt://${a}` : `mqtt://${a}:1883`;
}

export interface ConnectOptions {
  clientId: string;
  username?: string;
  password?: string;
  will?: { topic: string; payload: string };
  keepalive?: number;
  /**
   * The embedded broker, for clients in the same process (the manager, the local proplet): they speak MQTT
   * over an in-memory stream instead of a loopback socket, the same protocol without the syscalls.
   */
  broker?: Aedes;
  /**
   * Keep the session on the broker while disconnected (MQTT clean=false): its subscriptions stay and QoS 1
   * messages queue for it. The managers of one site share one such session, so what arrives during a hand-over
   * reaches the one that takes over.
   */
  persistentSession?: boolean;
  /** TLS for mqtts:// and wss://: the CA to trust, a client certificate, or (for tests only) no verification. */
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  /**
   * Called with the client before it connects: a persistent session's queued messages come in the same read as
   * the CONNACK, before `connectMqtt` returns, so their handlers must be in place by then.
   */
  onClient?: (client: MqttClient) => void;
}

/**
 * Two connected in-memory streams: what one writes, the other reads. Writes of one turn are delivered together
 * on setImmediate, as a socket would deliver them; aedes does not see data pushed synchronously in many small
 * writes (its 'readable' handler never fired in that case).
 */
function duplexPair(): [Duplex, Duplex] {
  const make = (peer: () => Duplex) => {
    let pending: Buffer[] = [];
    return new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        if (pending.length === 0) {
          setImmediate(() => {
            const data = Buffer.concat(pending);
            pending = [];
            peer().push(data);
          });
        }
        pending.push(chunk);
        cb();
      },
      final(cb) {
        setImmediate(() => peer().push(null));
        cb();
      },
    });
  };
  const a: Duplex = make(() => b);
  const b: Duplex = make(() => a);
  // A destroyed end (aedes destroys rather than ends) must close the other one too, or its reader waits forever.
  a.once("close", () => b.destroy());
  b.once("close", () => a.destroy());
  return [a, b];
}

/**
 * Connects, resolving once the first CONNACK arrives; mqtt.js reconnects on its own afterwards. A timeout of 0
 * waits for the broker for as long as it takes (a device may boot before its broker).
 */
/** mqtt.js tries again this long after a connection is lost or refused. */
const RETRY_MS = 1000;
/** …and this long after the broker refused the credentials (CONNACK 4 or 5). */
export const REFUSED_RETRY_MS = 5000;
/** An error said at warn level is said again at most this often. */
const REPEAT_MS = 60_000;
/** The broker's words for refused credentials (mqtt.js: "Connection refused: Not authorized", "Bad username or password"). */
export const REFUSED = /not authori[sz]ed|bad user/i;
/**
 * mqtt-packet's words for bytes that are no MQTT. An HTTP server's answer ("HTTP/1.1 400", 'H' = 0x48) reads as a
 * PUBACK with bad flags: a PROPLET_MQTT_ADDRESS with serve's --http-port said only "Invalid header flag bits, must
 * be 0x0 for puback packet".
 */
const NOT_MQTT = /invalid header flag bits|invalid packet|invalid protocol|malformed|packet too short|unknown packet/i;

/** What to do about a connection error, said after it ("" when there is nothing to add). */
function hintFor(message: string, o: ConnectOptions): string {
  if (NOT_MQTT.test(message))
    return " (what answers there does not speak MQTT: is the port the broker's? serve's MQTT port is its --mqtt-port, default 1883, not its --http-port, default 7070)";
  if (/CERTIFICATE_REQUIRED|certificate required/i.test(message))
    return " (the broker asks for a client certificate: PROPLET_MQTT_TLS_CLIENT_CERT and _KEY, from `propeller certs client NAME`)";
  if (/certificate|self.signed|SSL|TLS/i.test(message))
    return " (TLS: give the site CA, e.g. PROPLET_MQTT_TLS_CA_CERT, from `propeller certs create`)";
  if (!REFUSED.test(message)) return "";
  if (o.password)
    return " (the broker refused these credentials: check the entity id and API key, or the identity may have been revoked: a revoked one needs a new identity from the site's admin)";
  const given = o.username ? `API key was given with the id ${o.username}` : "identity was given";
  return ` (no ${given}: a broker with authentication needs an id and its API key: PROPLET_ENTITY_ID and PROPLET_API_KEY for a proplet, PROXY_ENTITY_ID and PROXY_API_KEY for the proxy)`;
}

export async function connectMqtt(address: string, o: ConnectOptions, timeoutMs = 10_000): Promise<MqttClient> {
  const opts: IClientOptions = {
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    clean: !o.persistentSession,
    keepalive: o.keepalive ?? 30,
    reconnectPeriod: RETRY_MS,
    // mqtt.js gives up for good on a refused CONNACK: the process then waited forever, saying it waited for the
    // broker, and never saw credentials mended on the broker's side (a re-provisioned or restored identity).
    reconnectOnConnackError: true,
    connectTimeout: timeoutMs > 0 ? timeoutMs : 10_000,
    protocolVersion: 4,
    ...(o.will ? { will: { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: 1, retain: false } } : {}),
    ...(o.tls ?? {}),
  };
  const client = o.broker ? inProcess(o.broker, opts) : overNetwork(address, opts);
  o.onClient?.(client);
  // Without a listener an 'error' event would throw; connection errors are retried by mqtt.js anyway. Each kind
  // of error is said at warn level, with what to do about it, then only at debug level for a minute: a person
  // reading the log of a proplet that cannot get in sees why now and then, not only in its first lines.
  const said = new Map<string, { at: number; since: number }>();
  client.on("error", (e) => {
    // Credentials do not mend themselves within a second: refused ones are tried again every 5 s, not every 1.
    if (REFUSED.test(e.message)) client.options.reconnectPeriod = REFUSED_RETRY_MS;
    const hint = hintFor(e.message, o);
    const before = said.get(e.message);
    if (before && Date.now() - before.at < REPEAT_MS) {
      before.since++;
      return log.debug(`mqtt ${o.clientId}: ${e.message}`);
    }
    const again = before
      ? ` (again: ${before.since + 1} times in ${Math.round((Date.now() - before.at) / 1000)} s)`
      : "";
    said.set(e.message, { at: Date.now(), since: 0 });
    log.warn(`mqtt ${o.clientId} at ${address}: ${e.message}${hint}${again}`);
  });
  client.on("connect", () => {
    client.options.reconnectPeriod = RETRY_MS;
  });
  await new Promise<void>((resolve, reject) => {
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            client.end(true);
            reject(new Error(`could not connect to MQTT broker at ${address} within ${timeoutMs / 1000}s`));
          }, timeoutMs)
        : undefined;
    client.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return client;
}

function inProcess(broker: Aedes, opts: IClientOptions): MqttClient {
  return new MqttClient(() => {
    const [ours, theirs] = duplexPair();
    broker.handle(theirs);
    return ours;
  }, opts);
}

function overNetwork(address: string, opts: IClientOptions): MqttClient {
  // mqtt.js would parse a URL string with the deprecated url.parse(); hand it the parts instead.
  const u = new URL(normalizeMqttUrl(address));
  const protocol = u.protocol.slice(0, -1) as IClientOptions["protocol"];
  const secure = protocol === "mqtts" || protocol === "wss";
  return mqtt.connect({
    ...opts,
    protocol,
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port || (protocol === "ws" ? 80 : protocol === "wss" ? 443 : secure ? 8883 : 1883)),
    ...(protocol === "ws" || protocol === "wss" ? { path: u.pathname } : {}),
    username: opts.username ?? (u.username ? decodeURIComponent(u.username) : undefined),
    password: opts.password ?? (u.password ? decodeURIComponent(u.password) : undefined),
  });
}

export function publishJson(client: Publisher, topic: string, payload: unknown, qos: 0 | 1 = 1): Promise<void> {
  return publishRaw(client, topic, JSON.stringify(payload), qos);
}

/** What publishing needs of a client: an MQTT client, or the manager's direct one on its broker (direct.ts). */
type Publisher = Pick<BusClient, "publish">;

export function publishRaw(client: Publisher, topic: string, payload: string, qos: 0 | 1 = 1): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, { qos, retain: false }, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Subscribes until the broker acknowledges. mqtt.js fails a SUBSCRIBE still in flight when its connection drops
 * ("Connection closed"): at start-up that rejection ended serve when its broker restarted at that moment
 * (test/e2e/broker-drop.test.ts). The client reconnects by itself, so subscribe again once it is back; the same
 * SUBSCRIBE twice is harmless. A direct client (direct.ts) cannot lose its broker and never gets here.
 */
export async function subscribeAcked(
  client: Pick<BusClient, "subscribeAsync">,
  topics: string[],
  qos: 0 | 1 = 1,
): Promise<void> {
  for (;;) {
    try {
      await client.subscribeAsync(topics, { qos });
      return;
    } catch (e) {
      const mqttClient = client instanceof MqttClient ? client : undefined;
      if (!mqttClient || mqttClient.disconnecting || !/connection closed/i.test(String(e))) throw e;
      log.debug(`subscribing to ${topics.join(", ")} again once the broker is back (${e})`);
      await new Promise<void>((resolve) => mqttClient.once("connect", () => resolve()));
    }
  }
}
