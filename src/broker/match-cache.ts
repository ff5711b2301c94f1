import type { Aedes } from "aedes";

// aedes finds a message's subscribers with qlobber (through mqemitter): it splits the topic and walks its trie for
// every message, though a fleet's heartbeats come on one topic and the subscriptions change only when a client
// subscribes or leaves. Here the matches are kept by topic and dropped whenever a subscription is added or removed,
// so every later message on a topic takes its list from a map (scripts/bench/fleet.ts --profile: qlobber's match
// was about 7 % of serve's main thread with 10,000 proplets heartbeating). A list handed out is only read
// (mqemitter's fastparallel iterates it); a topic's list made before a change is never handed out after it.

/** Topics kept at most; past that the map starts over (topics such as an FL update's name a round and a proplet). */
const MAX_TOPICS = 1024;
/**
 * A longer topic is matched each time, not kept: a proplet names the round of its FL update topic itself, and MQTT
 * allows 65,535 bytes, so 1,024 kept topics of its making held ~120 MiB (test/attack/match-cache.test.ts). Every
 * topic of the protocol is far shorter; kept ones now hold at most 1,024 × 512 characters.
 */
const MAX_TOPIC_CHARS = 512;

interface Matcher {
  match(topic: string, ctx?: unknown): unknown[];
  add(topic: string, value: unknown): unknown;
  remove(topic: string, value?: unknown): unknown;
  clear?(): unknown;
}

/**
 * Puts the cache in front of the broker's matcher (mqemitter 7's `_matcher`, a qlobber). Returns false, changing
 * nothing, when the broker's emitter is not the one this knows (a test in test/unit/broker says so on an upgrade).
 */
export function cacheMatches(aedes: Aedes): boolean {
  const m = (aedes as unknown as { mq?: { _matcher?: Matcher } }).mq?._matcher;
  if (!m || typeof m.match !== "function" || typeof m.add !== "function" || typeof m.remove !== "function") {
    return false;
  }
  const cache = new Map<string, unknown[]>();
  const match = m.match.bind(m);
  const add = m.add.bind(m);
  const remove = m.remove.bind(m);
  m.match = (topic: string, ctx?: unknown) => {
    if (ctx !== undefined || topic.length > MAX_TOPIC_CHARS) return match(topic, ctx);
    let hit = cache.get(topic);
    if (hit === undefined) {
      hit = match(topic);
      if (cache.size >= MAX_TOPICS) cache.clear();
      cache.set(topic, hit);
    }
    return hit;
  };
  m.add = (topic: string, value: unknown) => {
    cache.clear();
    return add(topic, value);
  };
  m.remove = (topic: string, value?: unknown) => {
    cache.clear();
    return remove(topic, value);
  };
  if (typeof m.clear === "function") {
    const clear = m.clear.bind(m);
    m.clear = () => {
      cache.clear();
      return clear();
    };
  }
  return true;
}
