import { SQL } from "bun";
import type { BrokerTls } from "../broker/broker.ts";
import { hostAllowed, hostRefusal, type OriginPolicy, originPolicy } from "../core/origins.ts";
import { log } from "../log.ts";
import type { Fence } from "../storage/postgres/journal.ts";
import { Lease, LeaseLost, RENEW_MS, TTL_MS } from "../storage/postgres/lease.ts";
import { migrate } from "../storage/postgres/migrations.ts";
import { redact } from "../storage/postgres/url.ts";
import { SchemaTooNew } from "../storage/schema.ts";
import { PROGRAM, VERSION } from "../version.ts";
import { listen } from "./listener.ts";

// The stand-by side of two managers sharing one PostgreSQL database (docs/ARCHITECTURE.md, "Two managers"):
// until this process holds the lease, it runs nothing of the manager; it answers `/health` as a stand-by and
// forwards every other request to the active manager, so a client pointed at either works. It takes the lease
// when the active one lets it expire (killed, cut off) or gives it up (a graceful stop).

export interface StandbyOptions {
  host: string;
  httpPort: number;
  tls?: { cert: string; key: string };
  instanceId: string;
  /** Without authentication, requests are answered only for serve's own names (as http-front.ts does). */
  auth: boolean;
  allowedOrigins?: string[];
  advertiseUrl?: string;
  /**
   * Told once the stand-by answers (systemd's READY=1: a stand-by is a started service), with how to renew its
   * certificate (SIGHUP).
   */
  onStandby?: (reloadTls: (tls: BrokerTls) => void) => void;
}

/** Set on what a stand-by forwards: a stand-by that receives it again was sent it by one (itself or another). */
const FORWARDED = "propeller-forwarded-by";

/**
 * Why a forward would loop: the request came from a stand-by already (the active manager's advertised URL leads to
 * a stand-by: its loopback default, on another machine, is the stand-by itself), or the target is this one.
 */
export function forwardLoop(req: Request, target: string, ownPort: number, ownHost: string): string | undefined {
  const t = new URL(target);
  const local = ["127.0.0.1", "localhost", "[::1]", ownHost].includes(t.hostname);
  const ownTarget = local && Number(t.port || (t.protocol === "https:" ? 443 : 80)) === ownPort;
  if (!req.headers.has(FORWARDED) && !ownTarget) return undefined;
  return `the active manager advertises ${target}, which leads back to a stand-by: start it with --advertise-url set to an address the other managers reach it at`;
}

function withoutHost(headers: Headers, by: string): Headers {
  const h = new Headers(headers);
  h.delete("host");
  h.set(FORWARDED, by);
  // The answer is passed on as it comes (compressed or not, `decompress: false`): only in an encoding the client
  // asked for, none when it asked for none (fetch would otherwise offer gzip and br on its behalf).
  if (!h.has("accept-encoding")) h.set("accept-encoding", "identity");
  return h;
}

/** Serves as a stand-by until the lease is ours; returns with the port free again. */
export async function standBy(o: StandbyOptions, lease: Lease): Promise<void> {
  // `reached`: PostgreSQL answered, so this stand-by could take over (its readiness).
  let cached: { at: number; url?: string; reached: boolean } = { at: 0, reached: false };
  let asking: Promise<void> | undefined;
  const ask = async () => {
    const h = await Promise.race([lease.current(), Bun.sleep(2000).then(() => Promise.reject(new Error("timeout")))])
      .then((v) => ({ v, reached: true }))
      .catch(() => ({ v: undefined, reached: false }));
    if (!h.reached && cached.reached) log.warn("stand-by: PostgreSQL does not answer; not ready to take over");
    if (h.reached && !cached.reached && cached.at) log.info("stand-by: PostgreSQL answers again");
    cached = { at: Date.now(), url: h.v?.live ? (h.v.url ?? undefined) : undefined, reached: h.reached };
  };
  const active = async () => {
    if (Date.now() - cached.at > 500) {
      if (!asking)
        asking = ask().finally(() => {
          asking = undefined;
        });
      await asking;
    }
    return cached.url;
  };
  let known: OriginPolicy | undefined;
  let loopSaid = false;
  const policy = () =>
    (known ??= originPolicy({
      tls: Boolean(o.tls),
      host: o.host,
      port: server.port!,
      allowedOrigins: o.allowedOrigins ?? [],
      advertiseUrl: o.advertiseUrl,
    }));
  const options = {
    hostname: o.host,
    idleTimeout: 0, // forwarded event streams stay open
    reusePort: false, // one port, one site: no second process may bind it alongside (http-front.ts)
    async fetch(req: Request) {
      // As the active manager does without authentication: else a page that DNS rebinding pointed here would
      // reach the active one through this forwarder.
      if (!o.auth && !hostAllowed(policy(), req.headers.get("host"))) {
        return Response.json({ error: hostRefusal(req.headers.get("host")) }, { status: 421 });
      }
      const url = new URL(req.url);
      const target = await active();
      // Ready: PostgreSQL answers, so this stand-by can take over (docs/ARCHITECTURE.md, "Health").
      const reasons = cached.reached ? [] : ["PostgreSQL does not answer: this stand-by cannot take over"];
      const code = reasons.length ? 503 : 200;
      const status = reasons.length ? "fail" : "pass";
      if (url.pathname === "/livez") return Response.json({ status: "pass" });
      if (url.pathname === "/readyz") {
        const lease = { name: "lease", status, ...(reasons.length ? { reason: reasons[0] } : {}) };
        const error = reasons.length ? { error: `not ready: ${reasons[0]}` } : {};
        return Response.json({ status, role: "standby", checks: [lease], ...error }, { status: code });
      }
      if (url.pathname === "/health") {
        return Response.json(
          {
            status,
            role: "standby",
            storage: "postgres",
            version: VERSION,
            ...(target ? { active_url: target } : {}),
            ...(reasons.length ? { reasons, error: `not ready: ${reasons[0]}` } : {}),
          },
          { status: code },
        );
      }
      if (!target) {
        const error = `no active manager right now: this stand-by takes over within ${TTL_MS / 1000 + 1} s; retry`;
        // Nothing was forwarded: the CLI may retry even a POST (client.ts).
        return Response.json(
          { error },
          { status: 503, headers: { "retry-after": "2", "propeller-not-acted": "true" } },
        );
      }
      // A loop held every request open and a socket each, for good (517 of them in a walk): refused at once.
      const loop = forwardLoop(req, target, server.port!, o.host);
      if (loop) {
        if (!loopSaid) log.error(`stand-by: ${loop}`);
        loopSaid = true;
        return Response.json({ error: loop }, { status: 508, headers: { "propeller-not-acted": "true" } });
      }
      try {
        return await fetch(new URL(url.pathname + url.search, target), {
          method: req.method,
          // The active manager's own name, not this forwarder's (which it would not answer to under --no-auth).
          headers: withoutHost(req.headers, o.instanceId),
          body: req.body,
          redirect: "manual",
          decompress: false,
        } as RequestInit);
      } catch (e) {
        cached = { ...cached, at: 0 };
        const error = `the active manager at ${target} did not answer: ${e instanceof Error ? e.message : e}; retry`;
        // Refused: the request never reached it, so the CLI may send even a POST again (client.ts), as when no
        // manager is active (a hand-over in progress).
        const refused = ["ECONNREFUSED", "ConnectionRefused"].includes((e as { code?: string }).code ?? "");
        return Response.json(
          { error },
          { status: 503, headers: { "retry-after": "2", ...(refused ? { "propeller-not-acted": "true" } : {}) } },
        );
      }
    },
  };
  // A listener whose certificate a SIGHUP renews (cli/listener.ts).
  const server = listen(
    (tls, port) => ({ ...options, port, ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}) }),
    o.tls,
    o.httpPort,
  );
  log.info(`stand-by: another manager holds the site's lease; forwarding REST on port ${server.port} to it`);
  o.onStandby?.((tls) => server.reloadTls(tls));
  while (!(await lease.acquire().catch(() => false))) await Bun.sleep(RENEW_MS / 2);
  server.stop();
  log.info(`took the site's lease (epoch ${lease.epoch}): this manager is now active`);
}

/**
 * Keeps the lease while active. A manager that cannot renew it for a whole TTL, or finds it taken, stops at once
 * (exit 1): another may be active already, and a supervisor restarts this one as a stand-by.
 */
function keepLease(lease: Lease, onLost: (why: string) => void): { stop: () => void; renewedAt: () => number } {
  let renewedAt = Date.now();
  const timer = setInterval(() => {
    lease.renew().then(
      () => {
        renewedAt = Date.now();
      },
      (e) => {
        if (e instanceof LeaseLost) onLost(e.message);
        else if (Date.now() - renewedAt > TTL_MS) onLost(`could not renew the lease for ${TTL_MS / 1000} s: ${e}`);
      },
    );
  }, RENEW_MS);
  return { stop: () => clearInterval(timer), renewedAt: () => renewedAt };
}

/** A manager fenced out must stop at once: another is active, and a supervisor restarts this one as a stand-by. */
function leaseLost(why: string): never {
  log.error(`lost the site's lease: ${why}; stopping so that only one manager acts`);
  process.exit(1);
}

export interface SiteOptions extends StandbyOptions {
  postgresUrl: string;
  /** Who holds the lease: the data dir's manager. */
  holder: string;
  /** Where the other managers reach this one's REST API. */
  advertised: string;
  /** The site's broker (`--mqtt-url`); none: this serve's embedded one. */
  mqttUrl?: string;
}

export interface Site {
  /** Checks the lease in every write transaction; a manager fenced out exits. */
  fence: Fence;
  /** Gives the lease up (a graceful stop) and closes its connection. */
  close(): Promise<void>;
  /** Renewed within the last two renewal periods, for `/readyz`. */
  leaseHeld(): boolean;
}

/**
 * Joins the site's managers: applies the migrations, then holds the lease at once or serves as a stand-by until it
 * can, and keeps it from then on. Returns once this manager is the active one.
 */
export async function joinSite(o: SiteOptions): Promise<Site> {
  // A small pool of its own, so renewals never queue behind a large write.
  const sql = new SQL(o.postgresUrl, { max: 1 });
  try {
    await migrate(sql, `PostgreSQL at ${redact(o.postgresUrl)}`);
  } catch (e) {
    await sql.close().catch(() => {});
    if (e instanceof SchemaTooNew) throw new SchemaTooNew(e.where, e.stored, e.known, PROGRAM);
    throw new Error(`PostgreSQL at ${redact(o.postgresUrl)}: ${e instanceof Error ? e.message : e}`);
  }
  const lease = new Lease(sql, o.holder, o.advertised);
  if (!(await lease.acquire())) {
    // A stand-by with a broker of its own would take over onto it, away from every proplet of the site (on the
    // active manager's broker): refused before it waits, not found out at the fail-over.
    if (!o.mqttUrl) {
      const held = await lease.current().catch(() => undefined);
      await sql.close().catch(() => {});
      throw new Error(
        `another manager${held?.url ? ` (${held.url})` : ""} holds this site's lease: a stand-by must use the site's broker (--mqtt-url, as the active one does); with its own embedded broker it would take over away from the site's proplets`,
      );
    }
    await standBy(o, lease);
  }
  const kept = keepLease(lease, leaseLost);
  return {
    fence: (tx) => lease.check(tx).catch((e) => leaseLost(String(e))),
    leaseHeld: () => Date.now() - kept.renewedAt() <= 2 * RENEW_MS,
    close: async () => {
      kept.stop();
      await lease.release().catch(() => {});
      await sql.close();
    },
  };
}
