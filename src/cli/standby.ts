import { SQL } from "bun";
import { log } from "../log.ts";
import { type Lease, LeaseLost, RENEW_MS, TTL_MS } from "../storage/postgres/lease.ts";
import { VERSION } from "../version.ts";

// The stand-by side of two managers sharing one PostgreSQL database (docs/ARCHITECTURE.md, "Two managers"):
// until this process holds the lease, it runs nothing of the manager; it answers `/health` as a stand-by and
// forwards every other request to the active manager, so a client pointed at either works. It takes the lease
// when the active one lets it expire (killed, cut off) or gives it up (a graceful stop).

export interface StandbyOptions {
  host: string;
  httpPort: number;
  tls?: { cert: string; key: string };
  instanceId: string;
}

/** Serves as a stand-by until the lease is ours; returns with the port free again. */
export async function standBy(o: StandbyOptions, lease: Lease): Promise<void> {
  let cached: { at: number; url?: string } = { at: 0 };
  const active = async () => {
    if (Date.now() - cached.at > 500) {
      const h = await lease.current().catch(() => undefined);
      cached = { at: Date.now(), url: h?.live ? (h.url ?? undefined) : undefined };
    }
    return cached.url;
  };
  const server = Bun.serve({
    hostname: o.host,
    port: o.httpPort,
    ...(o.tls ? { tls: o.tls } : {}),
    idleTimeout: 0, // forwarded event streams stay open
    async fetch(req) {
      const url = new URL(req.url);
      const target = await active();
      if (url.pathname === "/health") {
        return Response.json({
          status: "pass",
          role: "standby",
          storage: "postgres",
          version: VERSION,
          instance_id: o.instanceId,
          ...(target ? { active_url: target } : {}),
        });
      }
      if (!target) {
        const error = `no active manager right now: this stand-by takes over within ${TTL_MS / 1000 + 1} s; retry`;
        return Response.json({ error }, { status: 503, headers: { "retry-after": "2" } });
      }
      try {
        return await fetch(new URL(url.pathname + url.search, target), {
          method: req.method,
          headers: req.headers,
          body: req.body,
          redirect: "manual",
        });
      } catch (e) {
        cached = { at: 0 };
        const error = `the active manager at ${target} did not answer: ${e instanceof Error ? e.message : e}; retry`;
        return Response.json({ error }, { status: 503, headers: { "retry-after": "2" } });
      }
    },
  });
  log.info(`stand-by: another manager holds the site's lease; forwarding REST on port ${server.port} to it`);
  while (!(await lease.acquire().catch(() => false))) await Bun.sleep(RENEW_MS / 2);
  server.stop(true);
  log.info(`took the site's lease (epoch ${lease.epoch}): this manager is now active`);
}

/**
 * Keeps the lease while active. A manager that cannot renew it for a whole TTL, or finds it taken, stops at once
 * (exit 1): another may be active already, and a supervisor restarts this one as a stand-by.
 */
export function keepLease(lease: Lease, onLost: (why: string) => void): () => void {
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
  return () => clearInterval(timer);
}

/** A small pool of its own for the lease, so renewals never queue behind a large write. */
export function leaseConnection(url: string): SQL {
  return new SQL(url, { max: 1 });
}
