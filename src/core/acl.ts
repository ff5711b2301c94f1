import type { EntityKind } from "./identity.ts";
import { MAX_JSON_DEPTH, nestedDeeperThan } from "./json.ts";
import { type Channel, FL_UPDATES, parseFlUpdateTopic, topics } from "./topics.ts";

// Who may publish and subscribe to what on a site's broker, and what a proplet may say. Every participant stays
// under its channel's `m/{domain}/c/{channel}/…`; only the manager sends start and stop, only the proxy sends
// module chunks, and a proplet speaks only about itself. Pure: the broker's hooks call these.

export interface Peer {
  id: string;
  kind: EntityKind;
}

type Rules = { publish: Set<string>; subscribe: Set<string> };

export function aclFor(channel: Channel): Record<EntityKind, Rules> {
  const t = topics(channel);
  return {
    manager: {
      publish: new Set([t.start, t.stop, t.invoke]),
      subscribe: new Set([
        ...[t.propletAll, t.create, t.alive, t.results, t.metrics, t.taskMetrics, t.output, t.invokeResults],
        FL_UPDATES,
      ]),
    },
    proxy: { publish: new Set([t.registryChunks]), subscribe: new Set([t.registryRequest]) },
    proplet: {
      publish: new Set([
        ...[t.create, t.alive, t.results, t.metrics, t.taskMetrics, t.output, t.invokeResults],
        t.registryRequest,
      ]),
      subscribe: new Set([t.start, t.stop, t.invoke, t.registryChunks]),
    },
  };
}

/** Topics whose payload names the proplet it is about. */
export function selfTopics(channel: Channel): Set<string> {
  const t = topics(channel);
  return new Set([t.create, t.alive, t.results, t.metrics, t.taskMetrics, t.output, t.invokeResults]);
}

/**
 * Checks a proplet's payload on a topic about itself: `proplet_id` must be its own. A result without one (as
 * upstream's embedded proplet sends) gets the sender's id, so the manager can tell whose run it is. Returns the
 * payload to deliver with its parsed JSON, or a reason to refuse.
 */
export function checkSelf(
  peer: Peer,
  topic: string,
  payload: Buffer,
  resultsTopic: string,
): { payload: Buffer; msg: object } | string {
  const msg = jsonObject(payload);
  if (typeof msg === "string") return msg;
  const claimed = (msg as { proplet_id?: unknown }).proplet_id;
  if (claimed === undefined || claimed === null) {
    if (topic !== resultsTopic) return "proplet_id is missing";
    const named = { ...msg, proplet_id: peer.id };
    return { payload: Buffer.from(JSON.stringify(named)), msg: named };
  }
  if (claimed !== peer.id) return `proplet ${peer.id} may not speak for proplet ${String(claimed)}`;
  return { payload, msg };
}

/** Upstream's FL update fallback sits outside the channel: a proplet may publish there only as itself. */
export function mayPublishFlUpdate(peer: Peer, topic: string): boolean | undefined {
  const at = parseFlUpdateTopic(topic);
  if (!at) return undefined;
  return peer.kind === "proplet" && at.proplet === peer.id;
}

/** The client id the managers of a site share for their one persistent session (src/cli/site.ts). */
export const sharedManagerClientId = (c: Channel) => `propeller-manager-${c.domainId}-${c.channelId}`;

/**
 * Why a client id does not belong to the identity that logs in with it, if it does not. A client id is the entity
 * id, or starts with it and a dash (`<id>-…`): taking another's id would disconnect it (MQTT's takeover). A session
 * kept across connections (clean=false) only under the entity id itself, so an identity has one such session, not
 * one per made-up suffix each queueing messages on the broker. A site's managers share one session of their own.
 */
export function clientIdRefusal(peer: Peer, clientId: string, clean: boolean, channel: Channel): string | undefined {
  if (clientId === peer.id) return undefined;
  if (peer.kind === "manager" && clientId === sharedManagerClientId(channel)) return undefined;
  if (!clientId.startsWith(`${peer.id}-`)) return `client id ${clientId} is not ${peer.id} or ${peer.id}-…`;
  if (!clean) return `a persistent session (clean=false) is kept only under the client id ${peer.id}`;
  return undefined;
}

/** Manager-to-proplet topics whose payload may name the one proplet it is for (`proplet_id`). */
export function addressedTopics(channel: Channel): Set<string> {
  const t = topics(channel);
  return new Set([t.start, t.stop, t.invoke, t.registryChunks]);
}

/**
 * The proplet a manager-to-proplet payload is for, or undefined when it is for every proplet (no `proplet_id`, or
 * `broadcast` set, as the proplet agent reads them). Unreadable payloads are for nobody in particular either: the
 * proplet drops them itself, as before.
 */
export function addresseeOf(msg: unknown): string | undefined {
  if (typeof msg !== "object" || msg === null) return undefined;
  const m = msg as { proplet_id?: unknown; broadcast?: unknown };
  if (m.broadcast === true) return undefined;
  return typeof m.proplet_id === "string" && m.proplet_id ? m.proplet_id : undefined;
}

/**
 * A proplet's request to the OCI proxy, with `proplet_id` set to the sender's own id whatever it said, so the proxy
 * knows who asks and answers only that proplet. Returns the payload and its JSON, or why it is refused.
 */
export function stampRequester(peer: Peer, payload: Buffer): { payload: Buffer; msg: object } | string {
  const msg = jsonObject(payload);
  if (typeof msg === "string") return msg;
  const stamped = { ...msg, proplet_id: peer.id };
  return { payload: Buffer.from(JSON.stringify(stamped)), msg: stamped };
}

/** A payload's JSON object, or why it is none. */
function jsonObject(payload: Buffer): object | string {
  let msg: unknown;
  try {
    msg = JSON.parse(payload.toString("utf8"));
  } catch {
    return "payload is not JSON";
  }
  if (typeof msg !== "object" || msg === null || Array.isArray(msg)) return "payload is not a JSON object";
  if (nestedDeeperThan(msg, MAX_JSON_DEPTH)) return `payload nests deeper than ${MAX_JSON_DEPTH} levels`;
  return msg;
}
