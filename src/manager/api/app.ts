import { type Context, Hono, type Next } from "hono";
import { AppError } from "../../core/errors.ts";
import type { Check } from "../../core/health.ts";
import type { OriginPolicy } from "../../core/origins.ts";
import { hideEnvValues } from "../../core/task.ts";
import { type Channel, DEFAULT_CHANNEL_ID, DEFAULT_DOMAIN_ID } from "../../core/topics.ts";
import { log } from "../../log.ts";
import { SpanKind, tracing } from "../../telemetry/tracing.ts";
import type { Manager } from "../manager.ts";
import type { RateSampler } from "../rates.ts";
import { Sessions } from "../sessions.ts";
import { adminRoutes } from "./admin.ts";
import { type AuthOptions, identityRoutes, tokenOf, tokenRefusal } from "./auth.ts";
import { crossSiteRefusal, NO_ORIGINS } from "./browser.ts";
import { compressAnswer } from "./compress.ts";
import { cordonRoutes } from "./cordon.ts";
import { eventRoutes } from "./events.ts";
import { flRoutes } from "./fl.ts";
import { groupRoutes } from "./groups.ts";
import { healthRoutes, PUBLIC_PROBES } from "./health.ts";
import { STATUS_OF } from "./http.ts";
import { type JoinSite, joinRoutes } from "./join.ts";
import { type ApiLimits, bodyLimits, DEFAULT_API_LIMITS } from "./limits.ts";
import { logRoutes } from "./logs.ts";
import type { ManagerMetrics } from "./prometheus.ts";
import { propletRoutes } from "./proplets.ts";
import { recentRoutes } from "./recent.ts";
import { sessionRoutes } from "./session.ts";
import { Streams } from "./streams.ts";
import { taskRoutes } from "./tasks.ts";

// The REST API with upstream's paths and JSON keys (docs/ARCHITECTURE.md, "REST"). Handlers validate with the core
// schemas and call one room each; errors are `{"error": "..."}` with the status of their kind, and 5xx only for
// our own faults.

export interface AppInfo {
  version: string;
  instanceId: string;
  commit?: string;
  buildTime?: string;
  /** The storage backend in use, for `GET /health`. */
  storage?: string;
  /** With managers sharing PostgreSQL: "active" (a stand-by answers /health itself). */
  role?: string;
  /** The site's MQTT domain and channel, told to those who provision identities (default: "default"). */
  channel?: Channel;
  /** Served over TLS: the console's cookie is then Secure. */
  tls?: boolean;
  /** Body limits and stream caps (limits.ts); the defaults when not given. */
  limits?: ApiLimits;
  /** What a joining proplet is told: the CA it pins and where the broker is (join.ts). */
  join?: JoinSite;
  /** What `/readyz` and `/health` check (storage, broker, lease); none: always ready. */
  readiness?: () => Promise<Check[]>;
  /** The manager's counters sampled over time (manager/rates.ts), for `GET /stats/rates`; none: no samples. */
  rates?: RateSampler;
}

/**
 * `auth` unset: no authentication (`serve --no-auth`, loopback only). `origins`: serve's own and configured
 * browser origins, for refusing changes another site's page may have sent (none known: every Origin is foreign).
 */
/** A request's path as a span keeps it, in characters. */
const PATH_SHOWN = 256;

export function createApp(
  m: Manager,
  info: AppInfo,
  metrics?: ManagerMetrics,
  auth?: AuthOptions,
  origins: () => OriginPolicy = () => NO_ORIGINS,
): Hono {
  const app = new Hono();
  const limits = info.limits ?? DEFAULT_API_LIMITS;
  const sessions = auth?.sessions ?? new Sessions(m.identities);
  const streams = new Streams(limits.streams, m.identities, sessions);
  // Every middleware of the API, in three steps (each a layer of hono's chain costs an async frame per request,
  // and a task's way takes two requests): outside, inside authentication, and after the body limits.
  const traced = (c: Context, next: Next): Promise<void> => {
    const t = tracing();
    if (!t.enabled) return next();
    return (async () => {
      // Named by its route once routed (`GET /tasks/:id`), not by the path a client wrote: unauthenticated
      // requests with 16 KB paths, queued for a slow collector, took serve's heap to 1.4 GB. The path is an
      // attribute, cut at PATH_SHOWN characters.
      const span = t.start(c.req.method, SpanKind.server, undefined, {
        "http.method": c.req.method,
        "http.target": c.req.path.length > PATH_SHOWN ? `${c.req.path.slice(0, PATH_SHOWN)}…` : c.req.path,
      });
      await t.within(span, next);
      span
        ?.rename(`${c.req.method} ${c.req.routePath || "unknown"}`)
        .set("http.status_code", c.res.status)
        .end(c.res.status >= 500 ? `HTTP ${c.res.status}` : undefined);
    })();
  };
  app.use("*", async (c, next) => {
    const t0 = performance.now();
    // A span per request when tracing is on; what the request starts (a dispatch) is its child.
    await traced(c, next);
    // Request latency by route (prometheus.ts), the time to the answer before it is compressed.
    metrics?.observe(c, t0);
    // JSON answers compressed as the client accepts (gzip or deflate; lists of tasks compress tenfold), from 1 KiB
    // (compress.ts). Outside every step that reads or rewrites a body; event streams and NDJSON are left alone.
    await compressAnswer(c);
    // No page of ours, and no answer of the API, tells the next site where it came from (a Referer would carry the
    // address, and whatever an address held).
    c.res.headers.set("Referrer-Policy", "no-referrer");
  });
  // Authentication before any body is read: a request without a token costs no more than its headers.
  const unauthenticated = auth ? tokenRefusal(m.identities, sessions, auth) : undefined;
  // After authentication: a request with no credentials is told so first (401), a cookie without the console's
  // header is auth's refusal (403).
  const crossSite = crossSiteRefusal(origins);
  app.use("*", (c, next) => {
    const refused = unauthenticated?.(c) ?? crossSite(c);
    if (refused) return Promise.resolve(refused);
    // A viewer reads env keys, never values: rewritten here, so no route that carries env can forget it.
    if (auth && tokenOf(c)?.role === "viewer") return viewerAnswer(c, next);
    return next();
  });
  if (metrics) {
    app.get("/metrics", async (c) =>
      c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }),
    );
  }

  const bodyLimit = bodyLimits(limits);
  // A reader sees only committed state: a result just received is shown once a crash can no longer undo it
  // (a few ms on PostgreSQL, less on SQLite; nothing to wait for most of the time). The probes answer at once: a
  // store that cannot commit is what /readyz reports, not a reason to hang.
  const committed = (c: Context, next: Next): Promise<void> =>
    c.req.method === "GET" && !PUBLIC_PROBES.has(c.req.path) ? m.committed().then(next) : next();
  app.use("*", (c, next) => bodyLimit(c, () => committed(c, next)));

  app.onError((err, c) => {
    if (err instanceof AppError) {
      // As a stand-by in a hand-over answers (cli/standby.ts): the CLI and clients retry, even a POST.
      if (err.notActed) {
        c.header("Retry-After", "2");
        c.header("propeller-not-acted", "true");
      }
      return c.json({ error: err.message }, STATUS_OF[err.kind]);
    }
    // The body could not be read: the client went away, or sent a malformed chunked body (Bun answers 400 itself).
    // Anyone may send one before authentication: it is no error of serve's, and an error line for each was 20,000
    // lines in 3 s.
    if (err instanceof DOMException && err.name === "AbortError") {
      log.debug(`${c.req.method} ${c.req.path}: the request's body could not be read (${err.message})`);
      return c.json({ error: "the request's body could not be read" }, 400);
    }
    log.error(`${c.req.method} ${c.req.path}: ${err instanceof Error ? err.stack : err}`);
    return c.json({ error: err instanceof Error ? err.message : String(err) }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  // Internal ids only to an authenticated caller.
  const bearer = (c: Context) => /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  healthRoutes(app, info, info.readiness ?? (async () => []), (c) => !auth || !!m.identities.verifyToken(bearer(c)));

  taskRoutes(app, m.tasks, m.telemetry, m.invocations);
  logRoutes(app, m.tasks, m.output, streams);
  propletRoutes(app, m.proplets, m.telemetry);
  cordonRoutes(app, m.proplets, m.dispatcher);
  recentRoutes(app, m.recent, info.rates);
  eventRoutes(app, m.events.live, streams, (p) => m.proplets.idOf(p));
  groupRoutes(app, m.groups);
  flRoutes(app, m.fl);
  sessionRoutes(app, m.identities, sessions, { auth: Boolean(auth), secure: Boolean(info.tls) });
  adminRoutes(app, m);
  const channel = info.channel ?? { domainId: DEFAULT_DOMAIN_ID, channelId: DEFAULT_CHANNEL_ID };
  identityRoutes(app, m.identities, channel, info.join?.mqtt);
  joinRoutes(app, m.joins, info.join, channel, m.identities);
  return app;
}

/** A viewer's answer: every env value hidden (core/task.ts hideEnvValues). */
async function viewerAnswer(c: Context, next: Next): Promise<void> {
  await next();
  if (!c.res.headers.get("content-type")?.startsWith("application/json")) return;
  const body = hideEnvValues(await c.res.text());
  c.res = new Response(body, { status: c.res.status, headers: c.res.headers });
}
