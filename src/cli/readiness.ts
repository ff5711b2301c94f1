import { MqttClient } from "mqtt";
import type { EmbeddedBroker } from "../broker/broker.ts";
import type { BusClient } from "../broker/direct.ts";
import type { Check } from "../core/health.ts";
import { log } from "../log.ts";
import type { Storage } from "../storage/repository.ts";
import type { Site } from "./standby.ts";

// What serve's `/readyz` checks (docs/ARCHITECTURE.md, "Health"): a real write committed to the store, the broker
// (the embedded one listening, or the manager's client connected to an external one), and with managers sharing
// PostgreSQL the lease renewed. Answers are cached for a second and shared by callers asking at once, so a flood of
// unauthenticated probes costs at most one small write a second. On a local store (SQLite, LMDB) a write that committed is
// trusted for a minute, so a kubelet probing every 5 s does not wear an idle gateway's flash (docs/ARCHITECTURE.md, "What is
// written when"); a server-side store (PostgreSQL), which can go away at any moment, is written at every answer.

const CACHE_MS = 1000;
/** How long a committed probe write to a local store vouches for it; a failed one is tried again at the next answer. */
const LOCAL_PROOF_MS = 60_000;
/** A probe that has not answered by then counts as failed (a PostgreSQL host that black-holes packets). */
const PROBE_TIMEOUT_MS = 2000;

export interface ReadinessParts {
  /** A small committed write (Storage.probe). */
  probe(): Promise<void>;
  /** How long a probe that committed vouches for the store (0: probe at every answer). */
  proofMs?: number;
  /** Whether the manager reaches its broker, and in which words to say it does not. */
  broker(): Check;
  /** With a site: whether this manager still renews the lease. */
  lease?(): Check;
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export function readiness(parts: ReadinessParts): () => Promise<Check[]> {
  let last: { at: number; checks: Promise<Check[]> } | undefined;
  /** Failures are logged once, when a check turns bad, with the details the answer leaves out. */
  const failing = new Set<string>();
  const note = (c: Check, detail?: string) => {
    if (!c.ok && !failing.has(c.name)) log.warn(`not ready: ${c.reason}${detail ? ` (${detail})` : ""}`);
    if (c.ok && failing.delete(c.name)) log.info(`ready again: ${c.name}`);
    if (!c.ok) failing.add(c.name);
    return c;
  };
  let provenAt = Number.NEGATIVE_INFINITY;
  const probe = async () => {
    if (performance.now() - provenAt < (parts.proofMs ?? 0)) return;
    await within(parts.probe(), PROBE_TIMEOUT_MS);
    provenAt = performance.now();
  };
  const run = async (): Promise<Check[]> => {
    const storage = await probe().then(
      () => note({ name: "storage", ok: true }),
      (e) =>
        note(
          { name: "storage", ok: false, reason: "the store cannot commit a write" },
          e instanceof Error ? e.message : String(e),
        ),
    );
    const checks = [storage, note(parts.broker())];
    if (parts.lease) checks.push(note(parts.lease()));
    return checks;
  };
  return () => {
    if (!last || performance.now() - last.at > CACHE_MS) last = { at: performance.now(), checks: run() };
    return last.checks;
  };
}

/** serve's checks: its store, its broker (embedded) or its client's connection (external), its lease (a site). */
export function serveReadiness(
  store: Storage,
  broker: EmbeddedBroker | undefined,
  client: BusClient,
  site: Site | undefined,
): () => Promise<Check[]> {
  return readiness({
    probe: () => store.probe(),
    proofMs: store.kind === "postgres" ? 0 : LOCAL_PROOF_MS,
    broker: () =>
      broker && !broker.listening()
        ? { name: "broker", ok: false, reason: "the embedded MQTT broker is not listening" }
        : client instanceof MqttClient && !client.connected
          ? { name: "broker", ok: false, reason: "the manager is not connected to its MQTT broker" }
          : { name: "broker", ok: true },
    ...(site
      ? {
          lease: () =>
            site.leaseHeld()
              ? { name: "lease", ok: true }
              : { name: "lease", ok: false, reason: "the site's lease is not being renewed (PostgreSQL?)" },
        }
      : {}),
  });
}
